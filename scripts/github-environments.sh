#!/usr/bin/env bash
# Applies the GitHub environments kept as code in .github/environments/<name>.json to the
# repository with `gh api`, so that the approval gate of production deploys is reviewed like
# any other change instead of clicked together in the settings.
#
# Per file: creates or updates the environment (required reviewers, self-review, wait timer,
# deployment branch policy), then makes its deployment branch policies exactly the file's
# (creates the missing ones, deletes the others). Refuses a file without a reviewer, and a
# branch policy naming a branch that is not protected: deployments are meant to come only from
# protected branches. Reviewers are written as team slugs or user logins; the API takes ids,
# which the script looks up. Idempotent.
#
#   scripts/github-environments.sh [OWNER/REPO]   # default: the repository gh sees here
#
# Needs gh, logged in as an administrator of the repository, and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in gh jq; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done
repo="${1:-$(gh repo view --json nameWithOwner --jq .nameWithOwner)}"
owner="${repo%%/*}"

apply() {
  local file="$1" name reviewers='[]' type handle id branch existing
  name="$(jq -er '.name' "$file")"
  if ! jq -e '(.reviewers | length) >= 1' "$file" >/dev/null; then
    echo "error: $file: name at least one reviewer" >&2
    return 1
  fi

  # Reviewers: team slugs and user logins to the ids the API takes.
  while IFS=$'\t' read -r type handle; do
    case "$type" in
      Team) id="$(gh api "orgs/$owner/teams/$handle" --jq .id)" ;;
      User) id="$(gh api "users/$handle" --jq .id)" ;;
      *) echo "error: $file: reviewer type '$type' is neither Team nor User" >&2; return 1 ;;
    esac
    reviewers="$(jq -c --arg type "$type" --argjson id "$id" '. + [{type: $type, id: $id}]' \
      <<<"$reviewers")"
  done < <(jq -r '.reviewers[] | [.type, (.slug // .login)] | @tsv' "$file")

  # Deployments only from protected branches: every branch the file names must be one.
  while IFS= read -r branch; do
    if [ "$(gh api "repos/$repo/branches/$branch" --jq .protected)" != true ]; then
      echo "error: $file: branch '$branch' of $repo is not protected; protect it first" >&2
      return 1
    fi
  done < <(jq -r '.branch_policies[]? | select(.type == "branch") | .name' "$file")

  jq --argjson reviewers "$reviewers" \
    '{wait_timer, prevent_self_review, reviewers: $reviewers, deployment_branch_policy}' "$file" \
    | gh api --method PUT "repos/$repo/environments/$name" --input - >/dev/null

  if [ "$(jq -r '.deployment_branch_policy.custom_branch_policies' "$file")" = true ]; then
    existing="$(gh api --paginate "repos/$repo/environments/$name/deployment-branch-policies" \
      --jq '.branch_policies[] | [.id, .type, .name] | @tsv')"
    while IFS=$'\t' read -r id type branch; do
      [ -n "$id" ] || continue
      if ! jq -e --arg type "$type" --arg name "$branch" \
        'any(.branch_policies[]?; .type == $type and .name == $name)' "$file" >/dev/null; then
        echo "$name: removing the deployment $type policy '$branch'"
        gh api --method DELETE "repos/$repo/environments/$name/deployment-branch-policies/$id"
      fi
    done <<<"$existing"
    while IFS=$'\t' read -r type branch; do
      if ! grep -qxF "$type"$'\t'"$branch" < <(cut -f2- <<<"$existing"); then
        echo "$name: adding the deployment $type policy '$branch'"
        gh api --method POST "repos/$repo/environments/$name/deployment-branch-policies" \
          -f name="$branch" -f type="$type" >/dev/null
      fi
    done < <(jq -r '.branch_policies[]? | [.type, .name] | @tsv' "$file")
  fi

  gh api "repos/$repo/environments/$name" \
    --jq '{name, protection_rules: [.protection_rules[] | {type, reviewers: [.reviewers[]?.reviewer | (.slug // .login)], prevent_self_review, wait_timer}], deployment_branch_policy}'
}

shopt -s nullglob
files=(.github/environments/*.json)
if [ ${#files[@]} -eq 0 ]; then
  echo "error: no .github/environments/*.json" >&2
  exit 1
fi
for file in "${files[@]}"; do
  echo "Applying $file to $repo"
  apply "$file"
done
