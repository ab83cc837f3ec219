"""The web UI (ui/) and the OpenSearch Dashboards saved objects (opensearch/), shipped as package data."""
