"""Offline checks of the deployment templates, run by scripts/checks.d/deploy.sh.

SAM (deploy/sam/*.yaml): every template is linted as written, then each *variant* (a set of
parameter values: single user, alternating users in a VPC with a customer managed key, the
IAM access-key rotator, notifications with custom exclusions) is resolved the way
CloudFormation would resolve it (conditions evaluated, `Fn::If` branches chosen,
`AWS::NoValue` and resources whose condition is false removed), linted again with cfn-lint,
and checked: the role's exact statements, no wildcard action, the resources each statement
names, the environment (PostgreSQL's `:` exclusion kept by default), the alarms, the daily
report schedule and its input, the SNS topic and `sns:Publish` only with notifications.

Terraform (deploy/terraform): parsed with python-hcl2 and checked for the same points; every
`var.X` used is declared and every declared variable used.

Usage: python deploy_templates.py CFN_LINT   (the cfn-lint executable)
"""

import copy
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

from cfnlint.decode import decode
import hcl2

CFN_LINT = sys.argv[1] if len(sys.argv) > 1 else "cfn-lint"
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
IAM_KEYS = {
    "iam:GetUser",
    "iam:ListAccessKeys",
    "iam:CreateAccessKey",
    "iam:UpdateAccessKey",
    "iam:DeleteAccessKey",
    "iam:GetAccessKeyLastUsed",
}
POSTGRES_DEFAULT_EXCLUSIONS = ':/@"\'\\'
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/app/db-AbCdEf"

VARIANTS = {
    "single-user": {"SecretArn": ARN, "SecretName": "prod/app/db"},
    "alternating-vpc-kms": {
        "SecretArn": ARN,
        "SecretName": "prod/app/db",
        "MasterSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/master-XyZ123",
        "KmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "SubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
        "SecurityGroupIds": "sg-0123456789abcdef0",
        "SecretsManagerEndpoint": "https://vpce-0123.secretsmanager.eu-west-1.vpce.amazonaws.com",
    },
    "iam-rotator": {
        "SecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ci/deploy-key-AbCdEf",
        "SecretName": "ci/deploy-key",
        "IamUserPath": "/keyroll/",
        "NotificationEmail": "ops@example.com",
    },
    "notifications-custom-exclusions": {
        "SecretArn": ARN,
        "SecretName": "prod/app/db",
        "NotificationEmail": "ops@example.com",
        "NotificationEvents": "all",
        "ExcludeCharacters": "/@\"'\\:;",
        "MaxDaysSinceRotation": "95",
    },
}


# ---- resolving a variant -------------------------------------------------------------------

NOVALUE = object()


def param_value(tpl, values, name):
    p = tpl["Parameters"][name]
    v = values.get(name, p.get("Default"))
    if v is None:
        raise ValueError(f"parameter {name} has no value and no default")
    if p["Type"] == "CommaDelimitedList":
        return [] if v == "" else str(v).split(",")
    return str(v)


def evaluate(tpl, values, expr, conditions):
    if isinstance(expr, dict) and len(expr) == 1:
        (k, v), = expr.items()
        if k == "Ref" and v in tpl["Parameters"]:
            return param_value(tpl, values, v)
        if k == "Fn::Equals":
            return evaluate(tpl, values, v[0], conditions) == evaluate(tpl, values, v[1], conditions)
        if k == "Fn::Not":
            return not evaluate(tpl, values, v[0], conditions)
        if k == "Fn::And":
            return all(evaluate(tpl, values, x, conditions) for x in v)
        if k == "Fn::Or":
            return any(evaluate(tpl, values, x, conditions) for x in v)
        if k == "Fn::Join":
            parts = evaluate(tpl, values, v[1], conditions)
            return v[0].join(parts)
        if k == "Condition":
            return conditions[v]
    if isinstance(expr, str):
        return expr
    raise ValueError(f"cannot evaluate condition expression {expr!r}")


def resolve_node(node, conditions):
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            cond, yes, no = node["Fn::If"]
            return resolve_node(yes if conditions[cond] else no, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return NOVALUE
        out = {}
        for k, v in node.items():
            r = resolve_node(v, conditions)
            if r is not NOVALUE:
                out[k] = r
        return out
    if isinstance(node, list):
        return [r for r in (resolve_node(x, conditions) for x in node) if r is not NOVALUE]
    return node


def refs(node, found):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                found.update(n.split(".")[0] for n in re.findall(r"\$\{([^}!]+)\}", text))
                if not isinstance(v, str):
                    refs(v[1], found)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".")[0])
            else:
                refs(v, found)
    elif isinstance(node, list):
        for x in node:
            refs(x, found)


def resolve(tpl, values):
    """The template CloudFormation would act on for these parameter values."""
    tpl = copy.deepcopy(tpl)
    conditions = {}
    for name, expr in tpl.get("Conditions", {}).items():
        conditions[name] = evaluate(tpl, values, expr, conditions)
    out = {k: v for k, v in tpl.items() if k not in ("Conditions", "Metadata")}
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, body in tpl.get(section, {}).items():
            if "Condition" in body and not conditions[body["Condition"]]:
                continue
            body = {k: v for k, v in body.items() if k != "Condition"}
            kept[name] = resolve_node(body, conditions)
        out[section] = kept
    used = set()
    refs(out["Resources"], used)
    refs(out["Outputs"], used)
    params = {}
    for name, p in tpl["Parameters"].items():
        if name in used:
            p = dict(p)
            if name in values:
                p["Default"] = values[name]
            params[name] = p
    out["Parameters"] = params
    return out, conditions


# ---- SAM -------------------------------------------------------------------------------------

def lint(path):
    r = subprocess.run([CFN_LINT, path], capture_output=True, text=True)
    check(r.returncode == 0, f"cfn-lint {os.path.basename(path)}:\n{r.stdout}{r.stderr}")


def actions(st):
    a = st["Action"]
    return {a} if isinstance(a, str) else set(a)


def check_sam_variant(name, tpl, values):
    res = tpl["Resources"]
    role = res["RotationRole"]["Properties"]
    check(role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"},
          f"SAM {name}: role must be assumable by lambda.amazonaws.com only")
    sts = {st["Sid"]: st for p in role["Policies"] for st in p["PolicyDocument"]["Statement"]}
    want = {"RotatedSecret", "OwnLogs"}
    if values.get("MasterSecretArn"):
        want.add("MasterSecretReadOnly")
    if values.get("KmsKeyArn"):
        want.add("SecretKey")
    if values.get("IamUserPath"):
        want.add("IamUserKeys")
    if values.get("NotificationEmail"):
        want.add("PublishNotifications")
    check(set(sts) == want, f"SAM {name}: policy statements {sorted(sts)}, expected {sorted(want)}")
    check(actions(sts["RotatedSecret"]) == ROTATED and sts["RotatedSecret"]["Resource"] == {"Ref": "SecretArn"},
          f"SAM {name}: the rotated secret gets exactly Get/Describe/Put/UpdateSecretVersionStage, on SecretArn only")
    if "MasterSecretReadOnly" in sts:
        check(actions(sts["MasterSecretReadOnly"]) == {"secretsmanager:GetSecretValue"}
              and sts["MasterSecretReadOnly"]["Resource"] == {"Ref": "MasterSecretArn"},
              f"SAM {name}: the master secret is read-only")
    if "SecretKey" in sts:
        check(actions(sts["SecretKey"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
              and sts["SecretKey"]["Resource"] == {"Ref": "KmsKeyArn"}
              and "kms:ViaService" in sts["SecretKey"]["Condition"]["StringEquals"],
              f"SAM {name}: KMS only for the given key, only through Secrets Manager")
    if "IamUserKeys" in sts:
        check(actions(sts["IamUserKeys"]) == IAM_KEYS, f"SAM {name}: the IAM rotator's actions")
        check(sts["IamUserKeys"]["Resource"]
              == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user${IamUserPath}*"},
              f"SAM {name}: IAM actions only on the users under IamUserPath")
    if "PublishNotifications" in sts:
        check(actions(sts["PublishNotifications"]) == {"sns:Publish"}
              and sts["PublishNotifications"]["Resource"] == {"Ref": "NotificationTopic"},
              f"SAM {name}: sns:Publish on the stack's topic only")
    for sid, st in sts.items():
        check(st.get("Effect") == "Allow", f"SAM {name}: {sid} must Allow")
        check(not any(a.endswith("*") for a in actions(st)), f"SAM {name}: {sid} uses an action wildcard")
        check(st["Resource"] != "*", f"SAM {name}: {sid} must name its resource")
        check("secretsmanager:GetRandomPassword" not in actions(st),
              f"SAM {name}: the function draws passwords itself; no GetRandomPassword")

    fp = res["RotationFunction"]["Properties"]
    check(res["RotationFunction"]["Type"] == "AWS::Serverless::Function", f"SAM {name}: the function")
    check(fp["Runtime"] == "provided.al2023" and fp["Handler"] == "bootstrap", f"SAM {name}: provided.al2023 / bootstrap")
    check(("VpcConfig" in fp) == bool(values.get("SubnetIds")), f"SAM {name}: VPC config only with subnets")
    env = fp["Environment"]["Variables"]
    check("PASSWORD_LENGTH" in env, f"SAM {name}: PASSWORD_LENGTH")
    check(("SECRETS_MANAGER_ENDPOINT" in env) == bool(values.get("SecretsManagerEndpoint")),
          f"SAM {name}: SECRETS_MANAGER_ENDPOINT only when given")
    # PostgreSQL's ':' exclusion: EXCLUDE_CHARACTERS replaces the engine default, so the
    # template leaves it unset unless the operator gives one.
    if "ExcludeCharacters" in values:
        check(env.get("EXCLUDE_CHARACTERS") == {"Ref": "ExcludeCharacters"}, f"SAM {name}: EXCLUDE_CHARACTERS when given")
    else:
        check("EXCLUDE_CHARACTERS" not in env,
              f"SAM {name}: EXCLUDE_CHARACTERS must stay unset by default (it would replace PostgreSQL's default {POSTGRES_DEFAULT_EXCLUSIONS})")
    # Egress allow-lists: the Lambda refuses IAM and HTTP secrets unless these are set.
    iam_rotator = bool(values.get("IamUserPath"))
    check((env.get("KEYROLL_IAM_ALLOW_USERS") == {"Ref": "IamUserPath"}) == iam_rotator
          and (iam_rotator or "KEYROLL_IAM_ALLOW_USERS" not in env),
          f"SAM {name}: KEYROLL_IAM_ALLOW_USERS = IamUserPath exactly for the IAM rotator")
    for var, param in (("KEYROLL_HTTP_ALLOW_HOSTS", "HttpAllowHosts"), ("KEYROLL_HTTP_ALLOW_NETWORKS", "HttpAllowNetworks")):
        check((var in env) == bool(values.get(param)), f"SAM {name}: {var} only when {param} is given")
    topic = bool(values.get("NotificationEmail"))
    check(("KEYROLL_NOTIFY_SNS_TOPIC_ARN" in env) == topic and ("NotificationTopic" in res) == topic
          and ("NotificationEmailSubscription" in res) == topic,
          f"SAM {name}: the topic, its subscription and KEYROLL_NOTIFY_SNS_TOPIC_ARN exactly when NotificationEmail is set")
    if topic:
        sub = res["NotificationEmailSubscription"]["Properties"]
        check(sub["Protocol"] == "email" and sub["Endpoint"] == {"Ref": "NotificationEmail"}, f"SAM {name}: e-mail subscription")
        check(env["KEYROLL_NOTIFY_SNS_TOPIC_ARN"] == {"Ref": "NotificationTopic"}, f"SAM {name}: topic variable")

    perm = res["SecretsManagerInvokePermission"]["Properties"]
    check(perm["Principal"] == "secretsmanager.amazonaws.com" and perm["Action"] == "lambda:InvokeFunction"
          and "SourceAccount" in perm, f"SAM {name}: invoke permission for secretsmanager.amazonaws.com (with SourceAccount)")
    sched = res["RotationSchedule"]
    check(sched["Type"] == "AWS::SecretsManager::RotationSchedule"
          and "ScheduleExpression" in sched["Properties"]["RotationRules"], f"SAM {name}: rotation schedule")

    # The daily report: a schedule rule targeting the function with the report event.
    rule = res["DailyReportRule"]["Properties"]
    target = rule["Targets"][0]
    check(rule["ScheduleExpression"] == {"Ref": "ReportSchedule"} and target["Arn"] == {"Fn::GetAtt": ["RotationFunction", "Arn"]},
          f"SAM {name}: the daily report rule invokes the function")
    report_input = target["Input"]["Fn::Sub"]
    sample = json.loads(report_input.replace("${SecretArn}", ARN).replace("${MaxDaysSinceRotation}", "35"))
    check(sample == {"keyroll": "report", "secretIds": [ARN], "maxAgeDays": 35},
          f"SAM {name}: the report event shape ({report_input})")
    rp = res["DailyReportInvokePermission"]["Properties"]
    check(rp["Principal"] == "events.amazonaws.com" and rp["SourceArn"] == {"Fn::GetAtt": ["DailyReportRule", "Arn"]},
          f"SAM {name}: EventBridge may invoke the function for this rule only")

    # Alarms on the per-secret metrics the function emits.
    for alarm, metric in (("RotationFailedAlarm", "RotationFailed"), ("DaysSinceLastRotationAlarm", "DaysSinceLastRotation")):
        a = res[alarm]["Properties"]
        check(a["MetricName"] == metric and a["Namespace"] == {"Ref": "MetricsNamespace"}
              and a["Dimensions"] == [{"Name": "SecretName", "Value": {"Ref": "SecretName"}}],
              f"SAM {name}: {alarm} on {metric} by SecretName")
        check(("AlarmActions" in a) == topic, f"SAM {name}: {alarm} notifies the topic when there is one")
    check(res["DaysSinceLastRotationAlarm"]["Properties"]["Threshold"] == {"Ref": "MaxDaysSinceRotation"},
          f"SAM {name}: the age alarm's threshold is MaxDaysSinceRotation")
    check(res["Dashboard"]["Type"] == "AWS::CloudWatch::Dashboard", f"SAM {name}: dashboard")
    body, subs = res["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    filled = re.sub(r"\$\{[^}]+\}", "1", body)
    try:
        json.loads(filled)
    except ValueError as e:
        failures.append(f"SAM {name}: the dashboard body is not JSON once substituted: {e}")
    for metric in ("RotationFailed", "RotationSucceeded", "DaysSinceLastRotation", "StepDuration"):
        check(metric in body, f"SAM {name}: the dashboard shows {metric}")


sam_templates = sorted(glob.glob("deploy/sam/*.yaml"))
check(sam_templates, "SAM: no template")
with tempfile.TemporaryDirectory() as tmp:
    for path in sam_templates:
        lint(path)
        tpl, matches = decode(path)
        if tpl is None or matches:
            failures.append(f"SAM: {path} does not parse: {matches}")
            continue
        for name, values in VARIANTS.items():
            resolved, _ = resolve(tpl, values)
            out = os.path.join(tmp, f"{os.path.basename(path)}.{name}.json")
            with open(out, "w") as fh:
                json.dump(resolved, fh, indent=1)
            lint(out)
            check_sam_variant(name, resolved, values)
        # Parameter defaults: no default replaces an engine's password exclusions.
        check(tpl["Parameters"]["ExcludeCharacters"].get("Default") == "",
              "SAM: ExcludeCharacters must default to empty (each engine's default, PostgreSQL's with ':')")

# ---- Terraform ---------------------------------------------------------------------------------
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
             ("aws_secretsmanager_secret_rotation", "this"), ("aws_cloudwatch_log_group", "rotation"),
             ("aws_sns_topic", "notifications"), ("aws_sns_topic_subscription", "email"),
             ("aws_cloudwatch_event_rule", "daily_report"), ("aws_cloudwatch_event_target", "daily_report"),
             ("aws_lambda_permission", "daily_report"), ("aws_cloudwatch_metric_alarm", "rotation_failed"),
             ("aws_cloudwatch_metric_alarm", "days_since_last_rotation"),
             ("aws_cloudwatch_metric_alarm", "function_errors"), ("aws_cloudwatch_dashboard", "rotation")]:
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
rp = resources.get(("aws_lambda_permission", "daily_report"), {})
check(unq(rp.get("principal")) == "events.amazonaws.com" and "daily_report" in str(rp.get("source_arn")),
      "Terraform: EventBridge may invoke the function for the report rule only")
tgt = str(resources.get(("aws_cloudwatch_event_target", "daily_report"), {}).get("input"))
check("report" in tgt and "secretIds" in tgt and "maxAgeDays" in tgt, f"Terraform: the report event shape ({tgt})")
for alarm, metric in (("rotation_failed", "RotationFailed"), ("days_since_last_rotation", "DaysSinceLastRotation")):
    a = resources.get(("aws_cloudwatch_metric_alarm", alarm), {})
    check(unq(a.get("metric_name")) == metric and "SecretName" in str(a.get("dimensions"))
          and "local.secret_name" in str(a.get("dimensions")),
          f"Terraform: alarm {alarm} on {metric} by SecretName")
check("var.max_days_since_rotation" in str(resources.get(("aws_cloudwatch_metric_alarm", "days_since_last_rotation"), {}).get("threshold")),
      "Terraform: the age alarm's threshold is max_days_since_rotation")

pol = datas.get(("aws_iam_policy_document", "rotation"), {})


def tf_statements(p):
    out = {}
    for st in p.get("statement", []):
        out[unq(st.get("sid"))] = st
    for d in p.get("dynamic", []):
        for _, body in d.items():
            c = body["content"]
            c = c[0] if isinstance(c, list) else c
            out[unq(c.get("sid"))] = dict(c, _for_each=body.get("for_each"))
    return out


tsts = tf_statements(pol)
check(set(tsts) == {"RotatedSecret", "MasterSecretReadOnly", "SecretKey", "IamUserKeys", "PublishNotifications", "OwnLogs"},
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
iam = tsts.get("IamUserKeys", {})
check(tf_actions(iam) == IAM_KEYS and "var.iam_user_path" in str(iam.get("_for_each"))
      and [unq(r) for r in iam.get("resources", [])]
      == ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:user${statement.value}*"],
      "Terraform: the IAM rotator's actions, only with iam_user_path, on the users under it")
sns = tsts.get("PublishNotifications", {})
check(tf_actions(sns) == {"sns:Publish"} and "has_topic" in str(sns.get("_for_each"))
      and "aws_sns_topic.notifications" in str(sns.get("resources")),
      "Terraform: sns:Publish only with a topic, on it")
for sid, st in tsts.items():
    check(not any(a.endswith("*") for a in tf_actions(st)), f"Terraform: {sid} uses an action wildcard")
    check("secretsmanager:GetRandomPassword" not in tf_actions(st), "Terraform: no GetRandomPassword")

declared = {unq(name) for b in tf.get("variable", []) for name in b}
used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", text))
check(not (used - declared), f"Terraform: undeclared variables {sorted(used - declared)}")
check(not (declared - used), f"Terraform: unused variables {sorted(declared - used)}")
for name in ("subnet_ids", "security_group_ids", "secret_arn", "master_secret_arn", "kms_key_arn",
             "iam_user_path", "notification_email", "max_days_since_rotation", "report_schedule"):
    check(name in declared, f"Terraform: variable {name}")
variables = {unq(n): body for b in tf.get("variable", []) for n, body in b.items()}
check(variables.get("exclude_characters", {}).get("default") is None,
      "Terraform: exclude_characters must default to null (each engine's default, PostgreSQL's with ':')")
check(re.search(r"var\.iam_user_path\s*==\s*null\s*\?\s*\{\}\s*:\s*\{\s*KEYROLL_IAM_ALLOW_USERS\s*=\s*var\.iam_user_path", text) is not None,
      "Terraform: KEYROLL_IAM_ALLOW_USERS = iam_user_path for the IAM rotator")
check(re.search(r"var\.exclude_characters\s*==\s*null\s*\?\s*\{\}", text) is not None,
      "Terraform: EXCLUDE_CHARACTERS is set only when exclude_characters is")

if failures:
    print("deploy checks FAILED:", *failures, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"deploy checks passed: SAM ({len(sam_templates)} template(s), {len(VARIANTS)} variants each, cfn-lint clean), "
      f"Terraform ({len(resources)} resources, {len(declared)} variables)")
