"""IAM and EKS, as far as the README's IAM commands go, for readme::the_iam_commands_... .

Listens on 127.0.0.1:PORT (argv[1]) and appends each request to LOG (argv[2]) as a JSON line:
method, path, the service its signature names, and its parameters (IAM's form or EKS's JSON).
Answers with the smallest reply aws-cli accepts. It keeps the role policies it was given, so
SimulatePrincipalPolicy answers `allowed` only for an action a policy put on that role allows.
"""

import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
POLICIES = {}  # role name -> [policy document]


def service_of(authorization):
    # AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/iam/aws4_request, ...
    parts = authorization.split("/")
    return parts[3] if len(parts) > 4 else ""


def allows(document, action):
    for statement in document.get("Statement", []):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") == "Allow" and action in actions:
            return True
    return False


def iam_reply(params):
    action = params.get("Action", "")
    result = ""
    if action == "PutRolePolicy":
        POLICIES.setdefault(params.get("RoleName"), []).append(json.loads(params.get("PolicyDocument", "{}")))
    elif action == "SimulatePrincipalPolicy":
        role = params.get("PolicySourceArn", "").rsplit("/", 1)[-1]
        members = ""
        for key in sorted(k for k in params if k.startswith("ActionNames.member.")):
            name = params[key]
            decision = "allowed" if any(allows(d, name) for d in POLICIES.get(role, [])) else "implicitDeny"
            members += (f"<member><EvalActionName>{name}</EvalActionName><EvalResourceName>*</EvalResourceName>"
                        f"<EvalDecision>{decision}</EvalDecision></member>")
        result = f"<IsTruncated>false</IsTruncated><EvaluationResults>{members}</EvaluationResults>"
    body = (f'<{action}Response xmlns="{IAM_NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>stand-in</RequestId></ResponseMetadata></{action}Response>")
    return body, "text/xml"


def eks_reply(method, path):
    if method == "GET" and path.startswith("/clusters/"):
        name = path.split("/")[2]
        return json.dumps({"cluster": {"name": name, "identity": {"oidc": {"issuer": ISSUER}}}}), "application/json"
    return json.dumps({"association": {"associationId": "a-standin"}}), "application/json"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        service = service_of(self.headers.get("Authorization", ""))
        record = {"method": self.command, "path": self.path, "service": service}
        if service == "iam":
            record["params"] = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
            reply, kind = iam_reply(record["params"])
        elif service == "eks":
            record["params"] = json.loads(body) if body else {}
            reply, kind = eks_reply(self.command, self.path)
        else:
            reply, kind = json.dumps({"message": f"no stand-in for {service!r}"}), "application/json"
        with open(sys.argv[2], "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        data = reply.encode()
        self.send_response(200 if service in ("iam", "eks") else 400)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
