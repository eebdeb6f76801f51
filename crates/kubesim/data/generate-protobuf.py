#!/usr/bin/env python3
"""Writes v1.37-protobuf.json, the field table kubesim decodes protobuf bodies with.

Reads the generated.proto files of k8s.io/api, k8s.io/apimachinery and
k8s.io/apiextensions-apiserver v0.37.2 (Kubernetes v1.37.2, Apache-2.0) from the Go module
cache that tests/real-cluster fills, for the group/versions kubesim serves (data/discovery),
and writes, per message, its fields by tag: [JSON name, "single"|"repeated"|"map"|"inline",
type, map value type] ("inline": a message whose fields Go's JSON puts in the parent, found
through the OpenAPI schema in v1.37-definitions.json). Types are proto scalars or fully qualified message names.

Usage: python3 generate-protobuf.py [GOMODCACHE] > v1.37-protobuf.json
"""
import glob
import json
import os
import re
import sys

VERSION = "v0.37.2"
cache = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/go/pkg/mod")
here = os.path.dirname(os.path.abspath(__file__))

served = set()
for path in glob.glob(os.path.join(here, "discovery", "ap*__*.json")):
    parts = os.path.basename(path)[: -len(".json")].split("__")
    if parts == ["api", "v1"]:
        served.add(("core", "v1"))
    elif len(parts) == 3:
        served.add((parts[1].split(".")[0], parts[2]))

files = []
for path in glob.glob(f"{cache}/k8s.io/api@{VERSION}/*/*/generated.proto"):
    group, version = path.split("/")[-3:-1]
    if (group, version) in served:
        files.append(path)
files += glob.glob(f"{cache}/k8s.io/apimachinery@{VERSION}/pkg/**/generated.proto", recursive=True)
files += [f"{cache}/k8s.io/apiextensions-apiserver@{VERSION}/pkg/apis/apiextensions/v1/generated.proto"]

SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float", "sint32", "sint64", "fixed32", "fixed64"}
FIELD = re.compile(r"^\s*(optional|repeated|required)?\s*(map<\s*(\w+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)")
messages = {}
for path in sorted(files):
    text = re.sub(r"//[^\n]*", "", open(path).read())
    package = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
    for name, body in re.findall(r"message\s+(\w+)\s*\{([^{}]*)\}", text):
        fields = {}
        for line in body.split(";"):
            match = FIELD.match(line.strip())
            if not match:
                continue
            label, kind, key, value, field, tag = match.groups()

            def qualify(type_name):
                if type_name in SCALARS:
                    return type_name
                if "." in type_name:
                    return type_name.lstrip(".")
                return f"{package}.{type_name}"

            if kind.startswith("map<"):
                fields[tag] = [field, "map", qualify(key), qualify(value)]
            else:
                fields[tag] = [field, "repeated" if label == "repeated" else "single", qualify(kind)]
        messages[f"{package}.{name}"] = fields

# Fields Go inlines in JSON (`json:",inline"`, e.g. an IngressRule's ingressRuleValue, a
# Volume's volumeSource): a message field whose name the OpenAPI schema of its type lacks.
definitions = json.load(open(os.path.join(here, "v1.37-definitions.json")))["$defs"]
for name, fields in messages.items():
    schema = definitions.get(name.replace("k8s.io.", "io.k8s.", 1).replace("apiextensions_apiserver", "apiextensions-apiserver"))
    properties = (schema or {}).get("properties")
    if not properties:
        continue
    for field in fields.values():
        if field[0] not in properties and field[1] == "single" and field[2] in messages:
            field[1] = "inline"

json.dump(messages, sys.stdout, separators=(",", ":"), sort_keys=True)
print()
