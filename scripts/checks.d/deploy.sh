#!/usr/bin/env bash
# Offline validation of the deployment templates (run by scripts/test with the venv on PATH):
#
# - deploy/sam/*.yaml: cfn-lint (CloudFormation + SAM transform) on each template as written
#   and on each variant resolved for a set of parameter values (single user; alternating users
#   in a VPC with a customer managed key; the IAM access-key rotator; notifications with custom
#   exclusions), then assertions on what must hold in each: the least-privilege role, the
#   invoke permissions, the schedules, the alarms, the SNS topic, PostgreSQL's ':' exclusion
#   (scripts/checks.d/deploy_templates.py).
# - deploy/terraform/: parsed with a real HCL2 parser (python-hcl2) plus the same assertions;
#   every var.X used is declared. `terraform validate` runs when terraform is on PATH and the
#   AWS provider is in a local plugin directory (KEYROLL_TF_PLUGIN_DIR, default
#   /opt/tf-plugins): never from HashiCorp's registry, which CI machines cannot reach
#   (KEYROLL_TERRAFORM_VALIDATE=1 makes a missing terraform or provider an error).
# - KEYROLL_PACKAGE_LAMBDA=1 also runs scripts/package-lambda (release build with cargo-lambda
#   and zig, glibc <= 2.34 check, zip size). It is off by default: a cold build takes 10+
#   minutes on the project's 2-core machines.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${KEYROLL_VENV:-$HOME/.cache/keyroll-venv}
PY=$VENV/bin/python
[ -x "$PY" ] || PY=python3
CFN_LINT=$VENV/bin/cfn-lint
[ -x "$CFN_LINT" ] || CFN_LINT=cfn-lint

"$PY" scripts/checks.d/deploy_templates.py "$CFN_LINT"

PLUGINS=${KEYROLL_TF_PLUGIN_DIR:-/opt/tf-plugins}
if command -v terraform >/dev/null 2>&1 && [ -d "$PLUGINS/registry.terraform.io/hashicorp/aws" ]; then
  echo "terraform validate deploy/terraform (AWS provider from $PLUGINS)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp deploy/terraform/*.tf "$work/"
  # No checkpoint call, no registry: the provider comes from the local directory only.
  export CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null TF_IN_AUTOMATION=1
  terraform fmt -check -diff deploy/terraform
  (cd "$work" && terraform init -backend=false -input=false -no-color -plugin-dir="$PLUGINS" >/dev/null \
    && terraform validate -no-color)
elif [ "${KEYROLL_TERRAFORM_VALIDATE:-0}" = 1 ]; then
  echo "KEYROLL_TERRAFORM_VALIDATE=1 but terraform or the AWS provider in $PLUGINS is missing" >&2
  exit 1
else
  echo "terraform validate skipped: no terraform with a local AWS provider (set KEYROLL_TF_PLUGIN_DIR)"
fi

if [ "${KEYROLL_PACKAGE_LAMBDA:-0}" = 1 ]; then
  scripts/package-lambda
fi
