"""Files and frames: schema, values, readers, holdout split, Parquet, streaming. No torch."""
