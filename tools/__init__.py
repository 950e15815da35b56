"""Offline tooling: run the program for a stack with no cloud and no Pulumi CLI."""
