"""The web console of the router: duty bearers sign in with their organisation's token and read and
answer the alerts routed to them, in English or French (`pages`, `i18n`, `templates/`, `locales/`)."""
