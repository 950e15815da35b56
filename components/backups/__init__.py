"""Backups and disaster recovery: the backup program (``program/``, the ``backup`` image's
build context and entrypoint) and the component that schedules it on the cluster."""
