"""Alertmanager's API v2 on the router (read side and silences), so amtool, Grafana's Alertmanager data
source and Karma read tocsin: `filters` parses the queries, `shapes` writes Alertmanager's JSON, `api`
serves them. The other direction, pushing tocsin's alerts to an Alertmanager, is a channel
(router/notify/alertmanager.py)."""
