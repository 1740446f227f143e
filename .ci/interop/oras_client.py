#!/usr/bin/env python3
"""ORAS client steps for .ci/interop.sh, built on oras-py (PyPI package `oras`).

Why Python: the ORAS Go CLI is not packaged by Debian, PyPI or npm, and no other
source of binaries is reachable from CI. oras-py is the ORAS project's Python SDK;
this script drives its client API (`oras.provider.Registry`) the way `oras push`,
`oras pull` and `oras attach` would.

Subcommands (all print JSON results on stdout, diagnostics on stderr):

  push    REF --file PATH[:MEDIATYPE]... [--subject REF] [--config-media-type T] [--chunked]
          oras-py's high-level Registry.push (like `oras push`); --subject adds a
          `subject` descriptor made from the subject manifest's exact bytes.
  pull    REF --outdir DIR
          oras-py's high-level Registry.pull (like `oras pull`).
  attach  SUBJECT_REF --artifact-type T --file PATH[:MEDIATYPE]... [--tag TAG]
          like `oras attach`: an OCI image manifest with `artifactType`, the empty
          config descriptor (application/vnd.oci.empty.v1+json) and a `subject`,
          pushed by digest (or by --tag), through oras-py's blob upload, auth
          and request machinery.
  manifest REF
          fetch a manifest through oras-py; prints digest, size, mediaType.

Environment: REGISTRY_USER / REGISTRY_PASSWORD switch on credentials (Basic or
Bearer token flow, chosen from the registry's /v2/ challenge).
References are HOST:PORT/NAMESPACE/NAME(:TAG|@DIGEST); plain http (insecure).
"""

import argparse
import hashlib
import json
import os
import sys
from dataclasses import asdict

import oras.auth.token
import oras.container
import oras.oci
import oras.provider
import requests

# oras-py quirk (0.2.43): on a 401 while it already holds a bearer token it retries with that
# same token, and asks for a new one only after a 403. A token server that granted `pull` for
# the first request (a HEAD or GET) then answers the push's POST with 401 and a challenge for
# `pull,push` (as the Docker token protocol does): oras-py would fail. Docker, containers/image
# and the ORAS Go library fetch a token for the new scope; make oras-py do the same.
_authenticate_request = oras.auth.token.TokenAuth.authenticate_request


def _authenticate_request_rescoping(self, original, headers=None, refresh=False):
    if original.status_code == 401 and getattr(self, "token", None):
        refresh = True
    return _authenticate_request(self, original, headers, refresh=refresh)


oras.auth.token.TokenAuth.authenticate_request = _authenticate_request_rescoping

EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def log(msg):
    print(f"oras-py: {msg}", file=sys.stderr, flush=True)


def registry_for(ref):
    host = ref.split("/", 1)[0]
    backend = "token"
    user, password = os.environ.get("REGISTRY_USER"), os.environ.get("REGISTRY_PASSWORD")
    if user and password:
        # Pick the backend from the registry's own challenge.
        r = requests.get(f"http://{host}/v2/", timeout=10)
        challenge = r.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("basic"):
            backend = "basic"
        log(f"/v2/ -> {r.status_code}, challenge {challenge!r}, auth backend {backend}")
    reg = oras.provider.Registry(hostname=host, insecure=True, tls_verify=False, auth_backend=backend)
    if user and password:
        reg.auth.set_basic_auth(user, password)
        if backend == "basic":
            reg.set_header("Authorization", reg.auth.get_auth_header()["Authorization"])
    return reg


def container(ref):
    return oras.container.Container(ref)


def split_file(spec, default_type):
    path, _, media_type = spec.partition(":")
    return path, media_type or default_type


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fd:
        for chunk in iter(lambda: fd.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def check(resp, what):
    if resp.status_code not in (200, 201, 202):
        raise SystemExit(f"{what}: HTTP {resp.status_code}: {resp.text[:500]}")
    return resp


def fetch_manifest(reg, ref):
    """Return (raw bytes, descriptor) of the manifest at ref, digest computed locally."""
    c = container(ref)
    r = check(
        reg.do_request(f"http://{c.manifest_url()}", "GET", headers={"Accept": ACCEPT}),
        f"GET manifest {ref}",
    )
    raw = r.content
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    header = r.headers.get("Docker-Content-Digest")
    if header and header != digest:
        raise SystemExit(f"Docker-Content-Digest {header} != sha256 of body {digest}")
    media_type = json.loads(raw).get("mediaType") or r.headers.get("Content-Type", "").split(";")[0]
    return raw, {"mediaType": media_type, "digest": digest, "size": len(raw)}


def cmd_manifest(args):
    reg = registry_for(args.ref)
    _, desc = fetch_manifest(reg, args.ref)
    print(json.dumps(desc))


def cmd_push(args):
    reg = registry_for(args.ref)
    subject = None
    if args.subject:
        _, desc = fetch_manifest(reg, args.subject)
        subject = oras.oci.Subject(**desc)
        log(f"subject {desc}")
    files = []
    for spec in args.file:
        path, media_type = split_file(spec, "application/vnd.oci.image.layer.v1.tar")
        files.append(f"{path}:{media_type}")
    config = None
    if args.config_media_type:
        # oras-py reads "path:mediaType"; an empty JSON object as the config blob.
        cfg = os.path.join(os.getcwd(), "oras-config.json")
        with open(cfg, "w") as fd:
            fd.write("{}")
        config = f"{os.path.basename(cfg)}:{args.config_media_type}"
    resp = reg.push(
        target=args.ref,
        files=files,
        subject=subject,
        manifest_config=config,
        manifest_annotations={"org.opencontainers.image.description": "interop test artifact"},
        do_chunked=args.chunked,
        chunk_size=args.chunk_size,
        disable_path_validation=True,
    )
    check(resp, "push manifest")
    digest = resp.headers.get("Docker-Content-Digest")
    _, desc = fetch_manifest(reg, args.ref)
    if digest and digest != desc["digest"]:
        raise SystemExit(f"PUT returned digest {digest}, GET gives {desc['digest']}")
    print(json.dumps({"digest": desc["digest"], "size": desc["size"], "oci_subject": resp.headers.get("OCI-Subject")}))


def cmd_pull(args):
    reg = registry_for(args.ref)
    os.makedirs(args.outdir, exist_ok=True)
    files = reg.pull(target=args.ref, outdir=args.outdir)
    print(json.dumps({"files": files}))


def cmd_attach(args):
    reg = registry_for(args.subject)
    _, subject = fetch_manifest(reg, args.subject)
    log(f"subject {subject}")
    c = container(args.subject)
    target = container(f"{c.registry}/{c.api_prefix}:{args.tag or 'unused'}")

    empty_path = os.path.join(os.getcwd(), "oras-empty.json")
    with open(empty_path, "w") as fd:
        fd.write("{}")
    config = {"mediaType": EMPTY_MEDIA_TYPE, "digest": EMPTY_DIGEST, "size": 2}
    check(reg.upload_blob(empty_path, target, config), "upload empty config")

    layers = []
    for spec in args.file:
        path, media_type = split_file(spec, "application/octet-stream")
        layer = {
            "mediaType": media_type,
            "digest": sha256_file(path),
            "size": os.path.getsize(path),
            "annotations": {"org.opencontainers.image.title": os.path.basename(path)},
        }
        check(reg.upload_blob(path, target, layer, do_chunked=args.chunked, chunk_size=args.chunk_size), f"upload {path}")
        layers.append(layer)

    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": args.artifact_type,
        "config": config,
        "layers": layers,
        "subject": subject,
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    ref = args.tag or digest
    resp = check(
        reg.do_request(
            f"http://{target.manifest_url(ref)}",
            "PUT",
            data=raw,
            headers={"Content-Type": OCI_MANIFEST},
        ),
        "PUT manifest",
    )
    got = resp.headers.get("Docker-Content-Digest")
    if got and got != digest:
        raise SystemExit(f"registry says digest {got}, we computed {digest}")
    _, desc = fetch_manifest(reg, f"{c.registry}/{c.api_prefix}@{digest}")
    if desc["digest"] != digest:
        raise SystemExit(f"stored manifest digest {desc['digest']} != pushed {digest}")
    print(json.dumps({"digest": digest, "size": len(raw), "subject": subject["digest"], "oci_subject": resp.headers.get("OCI-Subject")}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("manifest")
    s.add_argument("ref")
    s.set_defaults(fn=cmd_manifest)

    s = sub.add_parser("push")
    s.add_argument("ref")
    s.add_argument("--file", action="append", required=True)
    s.add_argument("--subject")
    s.add_argument("--config-media-type")
    s.add_argument("--chunked", action="store_true")
    s.add_argument("--chunk-size", type=int, default=1024)
    s.set_defaults(fn=cmd_push)

    s = sub.add_parser("pull")
    s.add_argument("ref")
    s.add_argument("--outdir", required=True)
    s.set_defaults(fn=cmd_pull)

    s = sub.add_parser("attach")
    s.add_argument("subject")
    s.add_argument("--artifact-type", required=True)
    s.add_argument("--file", action="append", required=True)
    s.add_argument("--tag")
    s.add_argument("--chunked", action="store_true")
    s.add_argument("--chunk-size", type=int, default=1024)
    s.set_defaults(fn=cmd_attach)

    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
