# keyroll rotation function for one AWS Secrets Manager secret: the Lambda (provided.al2023),
# a least-privilege role, the permission for Secrets Manager to invoke it, and the rotation
# schedule. Build the package first with scripts/package-lambda (see docs/DEPLOY.md).

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  in_vpc = length(var.subnet_ids) > 0
  environment = merge(
    {
      PASSWORD_LENGTH    = tostring(var.password_length)
      EXCLUDE_CHARACTERS = var.exclude_characters
    },
    var.secrets_manager_endpoint == null ? {} : { SECRETS_MANAGER_ENDPOINT = var.secrets_manager_endpoint },
  )
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

  statement {
    sid       = "RandomPassword"
    actions   = ["secretsmanager:GetRandomPassword"]
    resources = ["*"] # GetRandomPassword acts on no resource.
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
