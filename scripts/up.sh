#!/usr/bin/env bash
# `make up STACK=<name>`: deploy a stack to a cluster with a local file state backend and a passphrase
# secrets provider, so a laptop needs no Pulumi Cloud account. Validates the stack offline first.
#
#   STACK                 stack name (stacks/Pulumi.$STACK.yaml)
#   PULUMI_BACKEND_URL    default: file://<project>/.pulumi-state
#   PULUMI_CONFIG_PASSPHRASE / PULUMI_CONFIG_PASSPHRASE_FILE
#                         default: a random passphrase kept in .pulumi-state/passphrase (mode 600)
#   PULUMI_ARGS           extra flags for `pulumi up` (e.g. --yes)
set -euo pipefail
cd "$(dirname "$0")/.."
stack="${STACK:?set STACK, e.g. make up STACK=local}"

if ! command -v pulumi >/dev/null 2>&1; then
  cat >&2 <<'MSG'
make up needs the Pulumi CLI, which is not on PATH.
  Install it: curl -fsSL https://get.pulumi.com | sh   (or: brew install pulumi/tap/pulumi)
  Then run make up again. `make plan` and `make check` work without it.
MSG
  exit 2
fi

# The stack file must be valid before anything touches a cluster (exit 2 lists every problem).
.venv/bin/inferstack plan "$stack" --out "build/plan/$stack" >/dev/null

# "<platform> <kube context>": aws and gcp stacks build their own cluster; onprem ones need a kube context.
read -r platform context < <(.venv/bin/python - "$stack" <<'PY'
import sys
from pathlib import Path
from stacks.config import load_stack_file
cfg = load_stack_file(Path(f"stacks/Pulumi.{sys.argv[1]}.yaml"))
print(cfg.platform.value, cfg.cluster.kube_context or "")
PY
)
if [ "$platform" = aws ]; then
  # The Kubernetes provider authenticates to EKS with `aws eks get-token` (README, "AWS").
  command -v aws >/dev/null 2>&1 || {
    echo "An aws stack needs the AWS CLI v2 on PATH (the cluster's kubeconfig runs \`aws eks get-token\`)." >&2
    echo "  Install it: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html" >&2; exit 2; }
  aws sts get-caller-identity >/dev/null 2>&1 || {
    echo "No usable AWS credentials: log in (aws sso login, or set AWS_PROFILE) and run make up again." >&2; exit 2; }
elif [ "$platform" = gcp ]; then
  # The Kubernetes provider authenticates to GKE with gke-gcloud-auth-plugin; the GCP provider uses
  # Application Default Credentials (README, "GCP").
  command -v gcloud >/dev/null 2>&1 || {
    echo "A gcp stack needs the gcloud CLI on PATH: https://cloud.google.com/sdk/docs/install" >&2; exit 2; }
  command -v gke-gcloud-auth-plugin >/dev/null 2>&1 || {
    echo "A gcp stack needs gke-gcloud-auth-plugin (the cluster's kubeconfig runs it)." >&2
    echo "  Install it: gcloud components install gke-gcloud-auth-plugin" >&2; exit 2; }
  gcloud auth application-default print-access-token >/dev/null 2>&1 || {
    echo "No Application Default Credentials: run gcloud auth application-default login, then make up again." >&2; exit 2; }
elif command -v kubectl >/dev/null 2>&1; then
  if [ -n "$context" ]; then
    kubectl config get-contexts "$context" >/dev/null 2>&1 || {
      echo "kube context '$context' (cluster.kube_context in stacks/Pulumi.$stack.yaml) is not in your kubeconfig." >&2
      echo "  List contexts: kubectl config get-contexts" >&2; exit 2; }
  elif ! kubectl config current-context >/dev/null 2>&1; then
    echo "No current kube context. Create a local cluster (kind create cluster --name inferstack)" >&2
    echo "  or pick one: kubectl config use-context NAME" >&2
    exit 2
  fi
elif [ ! -f "${KUBECONFIG:-$HOME/.kube/config}" ]; then
  echo "No kubeconfig at ${KUBECONFIG:-$HOME/.kube/config}: create a cluster (kind create cluster) first." >&2
  exit 2
fi

state_dir="$PWD/.pulumi-state"
mkdir -p "$state_dir"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$state_dir}"
if [ -z "${PULUMI_CONFIG_PASSPHRASE+x}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  if [ ! -f "$state_dir/passphrase" ]; then
    (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))' >"$state_dir/passphrase")
    echo "created a secrets passphrase in $state_dir/passphrase — keep it: it decrypts this stack's secrets"
  fi
  export PULUMI_CONFIG_PASSPHRASE_FILE="$state_dir/passphrase"
fi

pulumi stack select --create --secrets-provider passphrase "$stack"
# shellcheck disable=SC2086
pulumi up --stack "$stack" ${PULUMI_ARGS:-}
echo
echo "Endpoint and keys:  pulumi stack output --stack $stack url"
echo "                    pulumi stack output --stack $stack api_keys --show-secrets"
