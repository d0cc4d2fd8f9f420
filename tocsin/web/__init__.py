"""HTTP helpers shared by the stages that read the web (the feed and ReliefWeb connectors)."""
