"""Source connectors that put incident reports and news onto Kafka (see the connectors issue)."""
