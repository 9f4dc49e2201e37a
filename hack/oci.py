#!/usr/bin/env python3
"""Container images without a Docker engine.

  oci.py image --dockerfile Dockerfile --binary PATH --name REF --out ARCHIVE
      The operator's image, as the Dockerfile's final stage defines it: its LABELs (ARG defaults
      filled in), ENV, USER, ENTRYPOINT, CMD and `COPY --from=build SRC DEST` (SRC is the binary built
      by hack/build-image-binary.sh), on what the distroless base gives a static binary (CA
      certificates, passwd and group with the nonroot user 65532, nsswitch.conf and glibc's
      name-service modules from this Debian machine, /tmp). Written as an OCI image layout tar
      that containerd (`ctr images import`) and docker load.

  oci.py docker-archive --root DIR --entrypoint PATH --user UID:GID --name REF --out ARCHIVE
      An image of DIR's files (the pause image).

Prints the archive's path.
"""

import argparse
import hashlib
import io
import json
import os
import shlex
import sys
import tarfile
import time

DISTROLESS_BASE = "gcr.io/distroless/cc-debian12:nonroot"
MTIME = 0  # reproducible layers

PASSWD = """root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
"""
GROUP = """root:x:0:
nobody:x:65534:
nonroot:x:65532:
"""
NSSWITCH = """passwd: files
group: files
hosts: files dns
"""
NSS_LIBS = ["libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2"]
LIB_DIR = "/lib/x86_64-linux-gnu"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BASE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"]


def final_stage(dockerfile):
    """The final stage's instructions as (KEYWORD, text), continuation lines joined."""
    lines, current = [], ""
    with open(dockerfile) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            lines.append((current + line).strip())
            current = ""
    stages = [i for i, l in enumerate(lines) if l.split()[0].upper() == "FROM"]
    stage = lines[stages[-1]:]
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in stage]


def describe(dockerfile):
    """What the final stage says: base, labels, user, entrypoint, cmd, copies."""
    out = {"labels": {}, "copies": [], "args": {}, "env": []}
    for keyword, text in final_stage(dockerfile):
        if keyword == "FROM":
            out["base"] = text.split()[0]
        elif keyword == "ARG":
            name, _, default = text.partition("=")
            out["args"][name.strip()] = default.strip()
        elif keyword == "LABEL":
            for token in shlex.split(text):
                key, _, value = token.partition("=")
                for arg, default in out["args"].items():
                    value = value.replace("${%s}" % arg, default).replace("$" + arg, default)
                out["labels"][key] = value
        elif keyword == "ENV":
            for token in shlex.split(text):
                if "=" not in token:
                    sys.exit(f"oci.py: ENV {text} is not KEY=VALUE")
                out["env"].append(token)
        elif keyword == "USER":
            out["user"] = text.strip()
        elif keyword == "ENTRYPOINT":
            out["entrypoint"] = json.loads(text)
        elif keyword == "CMD":
            out["cmd"] = json.loads(text)
        elif keyword == "COPY":
            parts = text.split()
            flags = [p for p in parts if p.startswith("--")]
            src, dest = [p for p in parts if not p.startswith("--")]
            out["copies"].append({"from": flags, "src": src, "dest": dest})
        else:
            sys.exit(f"oci.py: the final stage uses {keyword}, which this assembler does not know")
    return out


class Layer:
    """An uncompressed layer tar built in memory, entries in a fixed order and time."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.dirs = set()

    def _parents(self, path):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dir("/".join(parts[:i]))

    def dir(self, path, mode=0o755, uid=0):
        path = path.strip("/")
        if not path or path in self.dirs:
            return
        self._parents(path)
        self.dirs.add(path)
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.mtime, info.uid, info.gid = tarfile.DIRTYPE, mode, MTIME, uid, uid
        self.tar.addfile(info)

    def file(self, path, data, mode=0o644):
        path = path.strip("/")
        self._parents(path)
        info = tarfile.TarInfo(path)
        info.size, info.mode, info.mtime = len(data), mode, MTIME
        self.tar.addfile(info, io.BytesIO(data))

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_archive(out, ref, layer, config):
    """An OCI image layout tar, with docker's manifest.json too (both importers name it)."""
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(layer), "size": len(layer)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": manifest["mediaType"], "digest": sha(manifest_bytes),
                       "size": len(manifest_bytes),
                       "annotations": {"io.containerd.image.name": ref,
                                       "org.opencontainers.image.ref.name": tag}}],
    }
    blob = lambda d: "blobs/sha256/" + sha(d).split(":")[1]
    docker = [{"Config": blob(config_bytes), "RepoTags": [ref], "Layers": [blob(layer)]}]
    entries = [
        ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
        ("index.json", json.dumps(index, sort_keys=True).encode()),
        ("manifest.json", json.dumps(docker).encode()),
        (blob(config_bytes), config_bytes),
        (blob(manifest_bytes), manifest_bytes),
        (blob(layer), layer),
    ]
    tmp = f"{out}.{os.getpid()}.tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
            tar.addfile(info)
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), MTIME
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
    print(out)


def image_config(layer, user, entrypoint, cmd, labels, env, workdir):
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(MTIME)),
        "config": {"User": user, "Entrypoint": entrypoint, "Cmd": cmd, "Labels": labels,
                   "Env": env, "WorkingDir": workdir},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
        "history": [{"created_by": "hack/oci.py", "created": "1970-01-01T00:00:00Z"}],
    }


def operator_image(args):
    spec = describe(args.dockerfile)
    if spec.get("base") != DISTROLESS_BASE:
        sys.exit(f"oci.py: the final stage is FROM {spec.get('base')}; this assembler knows {DISTROLESS_BASE}")
    layer = Layer()
    for d, mode, uid in (("etc", 0o755, 0), ("tmp", 0o1777, 0), ("home/nonroot", 0o700, 65532)):
        layer.dir(d, mode, uid)
    layer.file("etc/passwd", PASSWD.encode())
    layer.file("etc/group", GROUP.encode())
    layer.file("etc/nsswitch.conf", NSSWITCH.encode())
    with open(CA_BUNDLE, "rb") as f:
        layer.file(CA_BUNDLE, f.read())
    for lib in NSS_LIBS:
        with open(os.path.join(LIB_DIR, lib), "rb") as f:
            layer.file(os.path.join(LIB_DIR, lib), f.read())
    for copy in spec["copies"]:
        if copy["from"] != ["--from=build"] or copy["src"] != "/personalize-watch":
            sys.exit(f"oci.py: COPY {copy} is not the build stage's binary")
        with open(args.binary, "rb") as f:
            layer.file(copy["dest"], f.read(), 0o755)
    data = layer.bytes()
    config = image_config(data, spec["user"], spec["entrypoint"], spec.get("cmd", []),
                          spec["labels"], BASE_ENV + spec["env"], "/home/nonroot")
    write_archive(args.out, args.name, data, config)


def plain_image(args):
    layer = Layer()
    for base, _, files in sorted(os.walk(args.root)):
        for name in sorted(files):
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                layer.file(os.path.relpath(path, args.root), f.read(), os.stat(path).st_mode & 0o777)
    data = layer.bytes()
    config = image_config(data, args.user, [args.entrypoint], [], {}, BASE_ENV[:1], "/")
    write_archive(args.out, args.name, data, config)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    img = sub.add_parser("image")
    img.add_argument("--dockerfile", required=True)
    img.add_argument("--binary", required=True)
    img.add_argument("--name", required=True)
    img.add_argument("--out", required=True)
    plain = sub.add_parser("docker-archive")
    plain.add_argument("--root", required=True)
    plain.add_argument("--entrypoint", required=True)
    plain.add_argument("--user", required=True)
    plain.add_argument("--name", required=True)
    plain.add_argument("--out", required=True)
    desc = sub.add_parser("describe", help="print what the Dockerfile's final stage says, as JSON")
    desc.add_argument("--dockerfile", required=True)
    args = parser.parse_args()
    if args.command == "image":
        operator_image(args)
    elif args.command == "docker-archive":
        plain_image(args)
    else:
        print(json.dumps(describe(args.dockerfile), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
