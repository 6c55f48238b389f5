#!/usr/bin/env bash
# Offline validation of the deployment templates (run by scripts/test with the venv on PATH):
#
# - deploy/sam/template.yaml: cfn-lint (CloudFormation + SAM transform), then assertions on
#   what must hold: the least-privilege role, the invoke permission, the schedule, the runtime.
# - deploy/terraform/: parsed with a real HCL2 parser (python-hcl2) plus the same assertions;
#   every var.X used is declared. `terraform validate` needs the AWS provider from HashiCorp's
#   registry, which this machine cannot reach; it runs when a terraform with a usable plugin
#   cache is on PATH (KEYROLL_TERRAFORM_VALIDATE=1).
# - KEYROLL_PACKAGE_LAMBDA=1 also runs scripts/package-lambda (release build with cargo-lambda
#   and zig, glibc <= 2.34 check, zip size). It is off by default: a cold build takes 10+
#   minutes on the project's 2-core machines.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${KEYROLL_VENV:-$HOME/.cache/keyroll-venv}/bin/python
[ -x "$PY" ] || PY=python3

echo "cfn-lint deploy/sam/template.yaml"
cfn-lint deploy/sam/template.yaml

"$PY" - <<'PY'
import glob, re, sys

from cfnlint.decode import decode
import hcl2

failures = []
def check(cond, what):
    if not cond:
        failures.append(what)

ROTATED = {
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
}

# ---- SAM -------------------------------------------------------------------------------
tpl, matches = decode("deploy/sam/template.yaml")
check(tpl is not None and not matches, f"SAM template does not parse: {matches}")
res = tpl["Resources"]

def statements(doc):
    out = []
    for st in doc["Statement"]:
        if isinstance(st, dict) and "Fn::If" in st:
            st = st["Fn::If"][1]  # the statement when the condition holds
        out.append(st)
    return out

def actions(st):
    a = st["Action"]
    return {a} if isinstance(a, str) else set(a)

role = res["RotationRole"]["Properties"]
check(role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"},
      "SAM: role must be assumable by lambda.amazonaws.com only")
sts = {st["Sid"]: st for p in role["Policies"] for st in statements(p["PolicyDocument"])}
check(set(sts) == {"RotatedSecret", "MasterSecretReadOnly", "RandomPassword", "SecretKey", "OwnLogs"},
      f"SAM: unexpected policy statements {sorted(sts)}")
check(actions(sts["RotatedSecret"]) == ROTATED and sts["RotatedSecret"]["Resource"] == {"Ref": "SecretArn"},
      "SAM: the rotated secret gets exactly Get/Describe/Put/UpdateSecretVersionStage, on SecretArn only")
check(actions(sts["MasterSecretReadOnly"]) == {"secretsmanager:GetSecretValue"}
      and sts["MasterSecretReadOnly"]["Resource"] == {"Ref": "MasterSecretArn"},
      "SAM: the master secret is read-only")
check(actions(sts["RandomPassword"]) == {"secretsmanager:GetRandomPassword"}, "SAM: GetRandomPassword")
check(actions(sts["SecretKey"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
      and sts["SecretKey"]["Resource"] == {"Ref": "KmsKeyArn"}
      and "kms:ViaService" in sts["SecretKey"]["Condition"]["StringEquals"],
      "SAM: KMS only for the given key, only through Secrets Manager")
for sid, st in sts.items():
    check(st.get("Effect") == "Allow", f"SAM: {sid} must Allow")
    check(not any(a.endswith("*") for a in actions(st)), f"SAM: {sid} uses an action wildcard")
    if sid != "RandomPassword":
        check(st["Resource"] != "*", f"SAM: {sid} must name its resource")

fn = res["RotationFunction"]
check(fn["Type"] == "AWS::Serverless::Function", "SAM: the function")
fp = fn["Properties"]
check(fp["Runtime"] == "provided.al2023" and fp["Handler"] == "bootstrap", "SAM: provided.al2023 / bootstrap")
check("Fn::If" in fp["VpcConfig"], "SAM: VPC subnets/security groups as parameters")
for v in ("PASSWORD_LENGTH", "EXCLUDE_CHARACTERS", "SECRETS_MANAGER_ENDPOINT"):
    check(v in fp["Environment"]["Variables"], f"SAM: environment variable {v}")
perm = res["SecretsManagerInvokePermission"]["Properties"]
check(perm["Principal"] == "secretsmanager.amazonaws.com" and perm["Action"] == "lambda:InvokeFunction"
      and "SourceAccount" in perm, "SAM: invoke permission for secretsmanager.amazonaws.com (with SourceAccount)")
sched = res["RotationSchedule"]
check(sched["Type"] == "AWS::SecretsManager::RotationSchedule"
      and "ScheduleExpression" in sched["Properties"]["RotationRules"], "SAM: rotation schedule")
for p in ("SubnetIds", "SecurityGroupIds", "SecretArn", "MasterSecretArn", "KmsKeyArn"):
    check(p in tpl["Parameters"], f"SAM: parameter {p}")

# ---- Terraform ---------------------------------------------------------------------------
files = sorted(glob.glob("deploy/terraform/*.tf"))
check(files, "Terraform: no .tf files")
tf = {}
text = ""
for f in files:
    with open(f) as fh:
        src = fh.read()
    text += src
    try:
        parsed = hcl2.loads(src)
    except Exception as e:  # a syntax error in HCL
        failures.append(f"Terraform: {f} does not parse: {e}")
        continue
    for k, v in parsed.items():
        tf.setdefault(k, []).extend(v)

def unq(s):
    """python-hcl2 keeps the quotes of string literals and block labels."""
    return s.strip('"') if isinstance(s, str) else s

def blocks(kind):
    out = {}
    for b in tf.get(kind, []):
        for typ, named in b.items():
            for name, body in named.items():
                out[(unq(typ), unq(name))] = body
    return out

resources = blocks("resource")
datas = blocks("data")
for need in [("aws_iam_role", "rotation"), ("aws_iam_role_policy", "rotation"),
             ("aws_lambda_function", "rotation"), ("aws_lambda_permission", "secrets_manager"),
             ("aws_secretsmanager_secret_rotation", "this"), ("aws_cloudwatch_log_group", "rotation")]:
    check(need in resources, f"Terraform: resource {need[0]}.{need[1]}")
lam = resources.get(("aws_lambda_function", "rotation"), {})
check(unq(lam.get("runtime")) == "provided.al2023" and unq(lam.get("handler")) == "bootstrap",
      "Terraform: provided.al2023 / bootstrap")
check("vpc_config" in str(lam.get("dynamic", "")), "Terraform: VPC config from variables")
perm = resources.get(("aws_lambda_permission", "secrets_manager"), {})
check(unq(perm.get("principal")) == "secretsmanager.amazonaws.com" and "source_account" in perm,
      "Terraform: invoke permission for secretsmanager.amazonaws.com (with source_account)")
rot = resources.get(("aws_secretsmanager_secret_rotation", "this"), {})
check("schedule_expression" in str(rot.get("rotation_rules")), "Terraform: rotation schedule")

pol = datas.get(("aws_iam_policy_document", "rotation"), {})
def tf_statements(p):
    out = {}
    for st in p.get("statement", []):
        out[unq(st.get("sid"))] = st
    for d in p.get("dynamic", []):
        for _, body in d.items():
            c = body["content"]
            c = c[0] if isinstance(c, list) else c
            out[unq(c.get("sid"))] = c
    return out
tsts = tf_statements(pol)
check(set(tsts) == {"RotatedSecret", "MasterSecretReadOnly", "RandomPassword", "SecretKey", "OwnLogs"},
      f"Terraform: unexpected policy statements {sorted(tsts)}")
def tf_actions(st):
    return {unq(a) for a in st.get("actions", [])}
check(tf_actions(tsts.get("RotatedSecret", {})) == ROTATED
      and [unq(r) for r in tsts["RotatedSecret"]["resources"]] == ["${var.secret_arn}"],
      "Terraform: the rotated secret gets exactly the four actions, on var.secret_arn only")
check(tf_actions(tsts.get("MasterSecretReadOnly", {})) == {"secretsmanager:GetSecretValue"},
      "Terraform: the master secret is read-only")
check(tf_actions(tsts.get("SecretKey", {})) == {"kms:Decrypt", "kms:GenerateDataKey"},
      "Terraform: KMS for the given key")
for sid, st in tsts.items():
    check(not any(a.endswith("*") for a in tf_actions(st)), f"Terraform: {sid} uses an action wildcard")

declared = {unq(name) for b in tf.get("variable", []) for name in b}
used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", text))
check(not (used - declared), f"Terraform: undeclared variables {sorted(used - declared)}")
check(not (declared - used), f"Terraform: unused variables {sorted(declared - used)}")
for name in ("subnet_ids", "security_group_ids", "secret_arn", "master_secret_arn", "kms_key_arn"):
    check(name in declared, f"Terraform: variable {name}")

if failures:
    print("deploy checks FAILED:", *failures, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"deploy checks passed: SAM ({len(res)} resources), Terraform ({len(resources)} resources, {len(declared)} variables)")
PY

if [ "${KEYROLL_TERRAFORM_VALIDATE:-0}" = 1 ]; then
  (cd deploy/terraform && terraform init -backend=false -input=false >/dev/null && terraform validate)
fi

if [ "${KEYROLL_PACKAGE_LAMBDA:-0}" = 1 ]; then
  scripts/package-lambda
fi
