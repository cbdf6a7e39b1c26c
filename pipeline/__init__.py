"""The pipeline definition (`create_pipeline`), the local runner, the run summary and the CLI."""
