"""Outputs and stores: store paths and S3 calls with retries, deterministic writers, the store layout, validated user inputs."""
