"""ExpoScholar's backup program: PostgreSQL, Redis (ElastiCache) and media backups to S3, the
weekly restore test, and the operator's restores. The ``backup`` image's entrypoint
(``python3 -m backup``); from the repository, ``scripts/backup``.

Standard library and boto3 only, and the PostgreSQL and Redis command-line tools, so the same
code runs in the image and on an operator's machine."""
