"""The AWS CloudTrail importer: S3 layout, log file reader, mapping, digest validation, checkpoints, poll, SQS."""
