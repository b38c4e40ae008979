"""The PostgreSQL warehouse: connections and COPY, the DDL, partition state, the published snapshot."""
