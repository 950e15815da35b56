"""The one pull-request comment of the preview workflow, built from per-stack result files.

``.github/workflows/preview.yml`` previews every stack in a job of its own: the offline
preview (``make preview``) and the real ``pulumi preview`` with the policy pack. Each job
records what happened in ``<dir>/result.json`` next to the two outputs (``offline.txt``,
``real.txt``) and uploads the folder as an artifact; a last job downloads them all, builds one
comment body from them and creates or edits the pull request's comment that starts with
``MARKER``, so each push updates one comment instead of adding one per stack and push.

Why a module and not shell in the workflow: the rules (which results fail the check, when a
production stack's preview must be clean, how the body stays under GitHub's comment limit)
are tested here (tests/test_workflows.py). It needs only the standard library, so any Python
3.11 runs it before or without the project's dependencies.

    python -m tools.pr_comment record DIR --stack prod --role production ...   # result.json
    python -m tools.pr_comment verdict DIR [--stacks JSON]    # exit 1 when a stack fails
    python -m tools.pr_comment body DIR --stacks JSON --output body.md [--payload body.json]
    python -m tools.pr_comment find-comment COMMENTS.json     # id of the existing comment
"""
