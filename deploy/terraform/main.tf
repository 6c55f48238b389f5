# keyroll rotation function for one AWS Secrets Manager secret: the Lambda (provided.al2023),
# a least-privilege role, the permission for Secrets Manager to invoke it, the rotation
# schedule, a daily report of the secret's age (EventBridge), alarms, an optional SNS topic
# and a dashboard. Build the package first with scripts/package-lambda (see docs/DEPLOY.md).

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  in_vpc    = length(var.subnet_ids) > 0
  has_topic = var.notification_email != null
  # The SecretName dimension of the function's metrics: the ARN's name without -XXXXXX.
  secret_name = regex("^arn:[^:]+:secretsmanager:[^:]+:[0-9]{12}:secret:(.+)-[A-Za-z0-9]{6}$", var.secret_arn)[0]
  environment = merge(
    {
      PASSWORD_LENGTH           = tostring(var.password_length)
      KEYROLL_METRICS_NAMESPACE = var.metrics_namespace
    },
    # Unset unless given: each engine keeps its own default (PostgreSQL excludes ':').
    var.exclude_characters == null ? {} : { EXCLUDE_CHARACTERS = var.exclude_characters },
    var.secrets_manager_endpoint == null ? {} : { SECRETS_MANAGER_ENDPOINT = var.secrets_manager_endpoint },
    # Egress allow-lists: only the IAM users under iam_user_path, HTTP requests only to the
    # hosts and networks given (none by default).
    var.iam_user_path == null ? {} : { KEYROLL_IAM_ALLOW_USERS = var.iam_user_path },
    length(var.http_allow_hosts) == 0 ? {} : { KEYROLL_HTTP_ALLOW_HOSTS = join(",", var.http_allow_hosts) },
    length(var.http_allow_networks) == 0 ? {} : { KEYROLL_HTTP_ALLOW_NETWORKS = join(",", var.http_allow_networks) },
    local.has_topic ? {
      KEYROLL_NOTIFY_SNS_TOPIC_ARN = aws_sns_topic.notifications[0].arn
      KEYROLL_NOTIFY_EVENTS        = var.notification_events
    } : {},
  )
  alarm_actions = local.has_topic ? [aws_sns_topic.notifications[0].arn] : []
}

resource "aws_cloudwatch_log_group" "rotation" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rotation" {
  name_prefix        = "${var.function_name}-"
  description        = "keyroll rotation function - one secret, least privilege"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "rotation" {
  statement {
    sid = "RotatedSecret"
    actions = [
      "secretsmanager:GetSecretValue",
      "secretsmanager:DescribeSecret",
      "secretsmanager:PutSecretValue",
      "secretsmanager:UpdateSecretVersionStage",
    ]
    resources = [var.secret_arn]
  }

  dynamic "statement" {
    for_each = var.master_secret_arn == null ? [] : [var.master_secret_arn]
    content {
      sid       = "MasterSecretReadOnly"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.iam_user_path == null ? [] : [var.iam_user_path]
    content {
      sid = "IamUserKeys"
      actions = [
        "iam:GetUser",
        "iam:ListAccessKeys",
        "iam:CreateAccessKey",
        "iam:UpdateAccessKey",
        "iam:DeleteAccessKey",
        "iam:GetAccessKeyLastUsed",
      ]
      resources = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:user${statement.value}*"]
    }
  }

  dynamic "statement" {
    for_each = local.has_topic ? [1] : []
    content {
      sid       = "PublishNotifications"
      actions   = ["sns:Publish"]
      resources = [aws_sns_topic.notifications[0].arn]
    }
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "SecretKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.rotation.arn}:*"]
  }
}

resource "aws_iam_role_policy" "rotation" {
  name   = "rotate-one-secret"
  role   = aws_iam_role.rotation.id
  policy = data.aws_iam_policy_document.rotation.json
}

# ENI management for a function in a VPC (AWS's managed policy for exactly this).
resource "aws_iam_role_policy_attachment" "vpc" {
  count      = local.in_vpc ? 1 : 0
  role       = aws_iam_role.rotation.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_lambda_function" "rotation" {
  function_name    = var.function_name
  description      = "keyroll rotation function (createSecret, setSecret, testSecret, finishSecret)"
  filename         = var.package_zip
  source_code_hash = filebase64sha256(var.package_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = [var.architecture]
  memory_size      = 128
  timeout          = 60
  role             = aws_iam_role.rotation.arn
  tags             = var.tags

  environment {
    variables = local.environment
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  depends_on = [
    aws_cloudwatch_log_group.rotation,
    aws_iam_role_policy.rotation,
    aws_iam_role_policy_attachment.vpc,
  ]
}

resource "aws_lambda_permission" "secrets_manager" {
  statement_id   = "SecretsManagerInvoke"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.rotation.function_name
  principal      = "secretsmanager.amazonaws.com"
  source_account = data.aws_caller_identity.current.account_id
  source_arn     = var.secret_arn
}

resource "aws_secretsmanager_secret_rotation" "this" {
  secret_id           = var.secret_arn
  rotation_lambda_arn = aws_lambda_function.rotation.arn
  rotate_immediately  = var.rotate_immediately

  rotation_rules {
    schedule_expression = var.schedule_expression
    duration            = var.rotation_window
  }

  depends_on = [aws_lambda_permission.secrets_manager]
}

# ---- notifications ----------------------------------------------------------------------

resource "aws_sns_topic" "notifications" {
  count             = local.has_topic ? 1 : 0
  name_prefix       = "${var.function_name}-"
  display_name      = "keyroll rotation"
  kms_master_key_id = "alias/aws/sns"
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  count     = local.has_topic ? 1 : 0
  topic_arn = aws_sns_topic.notifications[0].arn
  protocol  = "email"
  endpoint  = var.notification_email
}

# ---- the daily report: the same function, invoked by EventBridge with keyroll's report event

resource "aws_cloudwatch_event_rule" "daily_report" {
  name_prefix         = "${var.function_name}-report-"
  description         = "keyroll daily report - DaysSinceLastRotation of the rotated secret"
  schedule_expression = var.report_schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "daily_report" {
  rule      = aws_cloudwatch_event_rule.daily_report.name
  target_id = "keyroll-daily-report"
  arn       = aws_lambda_function.rotation.arn
  input = jsonencode({
    keyroll    = "report"
    secretIds  = [var.secret_arn]
    maxAgeDays = var.max_days_since_rotation
  })
}

resource "aws_lambda_permission" "daily_report" {
  statement_id  = "DailyReportInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.rotation.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.daily_report.arn
}

# ---- alarms and dashboard ---------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "rotation_failed" {
  alarm_name          = "${var.function_name}-rotation-failed"
  alarm_description   = "A rotation step of ${local.secret_name} failed (see the function's logs for the error class and the fix)."
  namespace           = var.metrics_namespace
  metric_name         = "RotationFailed"
  dimensions          = { SecretName = local.secret_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "days_since_last_rotation" {
  alarm_name          = "${var.function_name}-days-since-last-rotation"
  alarm_description   = "${local.secret_name} was last rotated more than ${var.max_days_since_rotation} days ago (daily report)."
  namespace           = var.metrics_namespace
  metric_name         = "DaysSinceLastRotation"
  dimensions          = { SecretName = local.secret_name }
  statistic           = "Maximum"
  period              = 86400
  evaluation_periods  = 1
  threshold           = var.max_days_since_rotation
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Invocations that failed before or without a metric: start-up errors, crashes, timeouts, a
# report that could not describe its secret.
resource "aws_cloudwatch_metric_alarm" "function_errors" {
  alarm_name          = "${var.function_name}-errors"
  alarm_description   = "The keyroll function ${var.function_name} answered an error or did not start."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.rotation.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_dashboard" "rotation" {
  dashboard_name = "${var.function_name}-rotation"
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title = "Rotations of ${local.secret_name}", region = data.aws_region.current.name, stat = "Sum", period = 3600
          metrics = [
            [var.metrics_namespace, "RotationSucceeded", "SecretName", local.secret_name],
            [var.metrics_namespace, "RotationFailed", "SecretName", local.secret_name],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title       = "Days since last rotation", region = data.aws_region.current.name, stat = "Maximum", period = 86400
          metrics     = [[var.metrics_namespace, "DaysSinceLastRotation", "SecretName", local.secret_name]]
          annotations = { horizontal = [{ label = "alarm", value = var.max_days_since_rotation }] }
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title = "Step duration (ms)", region = data.aws_region.current.name, stat = "Average", period = 3600
          metrics = [
            for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] :
            [var.metrics_namespace, "StepDuration", "SecretName", local.secret_name, "Step", step]
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title = "Function", region = data.aws_region.current.name, stat = "Sum", period = 3600
          metrics = [
            ["AWS/Lambda", "Invocations", "FunctionName", aws_lambda_function.rotation.function_name],
            ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.rotation.function_name],
          ]
        }
      },
      {
        type = "alarm", x = 0, y = 12, width = 24, height = 3
        properties = {
          title = "Alarms"
          alarms = [
            aws_cloudwatch_metric_alarm.rotation_failed.arn,
            aws_cloudwatch_metric_alarm.days_since_last_rotation.arn,
            aws_cloudwatch_metric_alarm.function_errors.arn,
          ]
        }
      },
    ]
  })
}
