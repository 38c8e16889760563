"""Outputs and stores: deterministic writers, the store layout, validated user inputs, the per-tile job."""
