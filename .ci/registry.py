"""A local stand-in for the npm registry and for JSR, for .ci/check-packages.

    python3 .ci/registry.py TARBALLS_DIR JSR_DIR PORT_FILE

Serves, on 127.0.0.1 and a free port (written to PORT_FILE once listening):

- the npm registry's read API for the packed tarballs in TARBALLS_DIR: GET /<name> (scoped
  names as /@scope/name or /@scope%2fname) answers the package document, and GET
  /-/<file>.tgz the tarball, so that Deno (`npm:` specifiers, no node_modules) installs
  refscope exactly as it would from registry.npmjs.org;
- the staged JSR package in JSR_DIR under /jsr/, its sources rewritten the way JSR rewrites
  them on publish: each bare specifier mapped in deno.json's imports becomes its target
  (`@refscope/native` -> `npm:@refscope/native@<version>`).

Runs until killed.
"""

import base64
import hashlib
import http.server
import io
import json
import pathlib
import sys
import tarfile
import urllib.parse


def package_documents(tarballs, base):
    documents = {}
    for path in sorted(tarballs.glob("*.tgz")):
        data = path.read_bytes()
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            manifest = json.load(archive.extractfile("package/package.json"))
        name, version = manifest["name"], manifest["version"]
        manifest["dist"] = {
            "tarball": f"{base}/-/{path.name}",
            "shasum": hashlib.sha1(data).hexdigest(),
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
        }
        document = documents.setdefault(name, {"name": name, "dist-tags": {}, "versions": {}})
        document["versions"][version] = manifest
        document["dist-tags"]["latest"] = version
    return documents


def main():
    tarballs, jsr, port_file = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    imports = json.loads((jsr / "deno.json").read_text()).get("imports", {})
    state = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            if path.startswith("/-/") and (tarballs / path[3:]).is_file() and "/" not in path[3:]:
                return self.send(200, (tarballs / path[3:]).read_bytes(), "application/octet-stream")
            if path.startswith("/jsr/"):
                file = (jsr / path[5:]).resolve()
                if jsr.resolve() in file.parents and file.is_file():
                    source = file.read_text()
                    for specifier, target in imports.items():
                        source = source.replace(f'from "{specifier}"', f'from "{target}"')
                    return self.send(200, source.encode(), "application/typescript")
                return self.send(404, b"not found", "text/plain")
            document = state["documents"].get(path[1:])
            if document is None:
                return self.send(404, b'{"error":"not found"}', "application/json")
            return self.send(200, json.dumps(document).encode(), "application/json")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    state["documents"] = package_documents(tarballs, f"http://127.0.0.1:{port}")
    pathlib.Path(port_file).write_text(str(port))
    server.serve_forever()


if __name__ == "__main__":
    main()
