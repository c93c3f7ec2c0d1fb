"""The data's path into training: dataset layouts, ingest to Parquet shards, the Ray Data stream,
and offline synthetic datasets."""
