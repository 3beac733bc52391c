#!/usr/bin/env python3
"""Render a kustomization (deploy/k8s/...) the way `kubectl kustomize` does, for the subset
our manifests use, so CI can check the result offline (no kubectl, no cluster).

Supported: ``resources`` (files, and directories holding a kustomization.yaml), ``namespace``,
``labels`` (pairs added to ``metadata.labels``), ``images`` (newName/newTag for containers
whose image is the given name), and ``patches`` given by ``path`` (strategic merge, the target
found by the patch's kind and name). Strategic merge as kubectl applies it to the fields we
patch: mappings merge recursively, ``null`` deletes a key, lists of named items (containers,
env, ports, volumes, volumeMounts) merge by name, any other list (a CRD's, such as a KEDA
trigger list) is replaced. Anything else in a kustomization is refused, never ignored.

    python scripts/k8s_render.py deploy/k8s/overlays/pilot > pilot.yaml
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

KNOWN_KEYS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
MERGE_BY_NAME = {"containers", "initContainers", "env", "ports", "volumes", "volumeMounts"}
POD_SPEC_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


class RenderError(ValueError):
    pass


def _load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise RenderError(f"{path}: every document needs kind and metadata")
    return docs


def strategic_merge(base: Any, patch: Any, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if (key in MERGE_BY_NAME and isinstance(base, list) and isinstance(patch, list)
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        out = [dict(i) for i in base]
        index = {i["name"]: n for n, i in enumerate(out)}
        for item in patch:
            if item["name"] in index:
                out[index[item["name"]]] = strategic_merge(out[index[item["name"]]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    node: Any = doc
    for part in POD_SPEC_PATHS.get(doc["kind"], ()):
        node = node.get(part) if isinstance(node, dict) else None
    return node if doc["kind"] in POD_SPEC_PATHS and isinstance(node, dict) else None


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def render(directory: Path | str) -> list[dict[str, Any]]:
    directory = Path(directory)
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(spec) - KNOWN_KEYS
    if unknown:
        raise RenderError(f"{kfile}: unsupported keys {sorted(unknown)} (scripts/k8s_render.py renders a subset)")
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            docs.extend(render(target))
        elif target.is_file():
            docs.extend(_load_docs(target))
        else:
            raise RenderError(f"{kfile}: resource {entry!r} does not exist")
    for patch_entry in spec.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise RenderError(f"{kfile}: only `patches: - path: file` is supported, got {patch_entry}")
        for patch in _load_docs(directory / patch_entry["path"]):
            matches = [i for i, d in enumerate(docs)
                       if d["kind"] == patch["kind"] and d["metadata"]["name"] == patch["metadata"]["name"]]
            if len(matches) != 1:
                raise RenderError(f"{kfile}: patch {patch_entry['path']} targets {patch['kind']}/"
                                  f"{patch['metadata']['name']}, found {len(matches)} resources")
            docs[matches[0]] = strategic_merge(docs[matches[0]], patch)
    for label_set in spec.get("labels", []):
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label_set.get("pairs", {}))
    for image in spec.get("images", []):
        for doc in docs:
            pod = _pod_spec(doc)
            for container in (pod or {}).get("containers", []) + (pod or {}).get("initContainers", []):
                if _image_name(container["image"]) == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in spec:
        for doc in docs:
            doc["metadata"]["namespace"] = spec["namespace"]
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        ident = (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
        if ident in seen:
            raise RenderError(f"{kfile}: {ident[0]}/{ident[2]} defined twice")
        seen.add(ident)
    return docs


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        docs = render(argv[1])
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
