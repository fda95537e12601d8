"""Response packages, letters and the storage they are written to (local directory or S3)."""
