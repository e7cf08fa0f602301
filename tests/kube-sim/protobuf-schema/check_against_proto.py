#!/usr/bin/env python3
"""Cross-checks ../src/protobuf/schema.rs against the real generated.proto files of k8s.io/api
and k8s.io/apimachinery in the Go module cache: every message's field numbers and JSON names
must match the .proto exactly (inline fields are matched by number).
Usage: python3 check_against_proto.py [GOMODCACHE]"""
import glob, os, re, subprocess, sys

cache = sys.argv[1] if len(sys.argv) > 1 else subprocess.run(
    ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
k8s = os.path.join(cache, "k8s.io")
files = glob.glob(f"{k8s}/api@v0.32.*/*/v1/generated.proto") + glob.glob(
    f"{k8s}/apimachinery@v0.32.*/pkg/**/generated.proto", recursive=True)
protos = {}
for f in files:
    text = open(f).read()
    for m in re.finditer(r"^message (\w+) \{(.*?)^\}", text, re.S | re.M):
        fields = {fm.group(1): int(fm.group(2)) for fm in re.finditer(
            r"^\s+(?:optional|repeated)?\s*[\w.<>, ]+?\s+(\w+) = (\d+);", m.group(2), re.M)}
        protos.setdefault(m.group(1), []).append(fields)
here = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(here, "..", "src", "protobuf", "schema.rs")).read()
checked, bad = 0, 0
for m in re.finditer(r'name: "(\w+)",\n        fields: &\[\n(.*?)\n        \]', src, re.S):
    name = m.group(1)
    ours = re.findall(r'number: (\d+), go_name: "(\w+)", json_name: "(\w*)"', m.group(2))
    candidates = protos.get(name)
    if not candidates:
        print(f"no .proto message {name}")
        bad += 1
        continue
    def same(theirs):
        if len(theirs) != len(ours):
            return False
        for number, go_name, json_name in ours:
            if not json_name:
                # Inline (embedded) messages keep historical .proto names (Probe's `handler`).
                if int(number) not in theirs.values():
                    return False
            elif theirs.get(json_name) != int(number):
                return False
        return True
    checked += 1
    if not any(same(t) for t in candidates):
        bad += 1
        print(f"MISMATCH {name}: ours {ours}, .proto {candidates}")
print(f"checked {checked} messages against {len(files)} generated.proto files: {bad} mismatches")
sys.exit(1 if bad else 0)
