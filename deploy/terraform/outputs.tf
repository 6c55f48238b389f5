output "function_arn" {
  description = "Rotation function ARN (RotationLambdaARN)."
  value       = aws_lambda_function.rotation.arn
}

output "role_arn" {
  description = "The function's role."
  value       = aws_iam_role.rotation.arn
}

output "notification_topic_arn" {
  description = "The SNS topic of the alarms and the function's notifications (null without notification_email)."
  value       = local.has_topic ? aws_sns_topic.notifications[0].arn : null
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.rotation.dashboard_name
}
