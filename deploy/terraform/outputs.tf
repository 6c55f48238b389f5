output "function_arn" {
  description = "Rotation function ARN (RotationLambdaARN)."
  value       = aws_lambda_function.rotation.arn
}

output "role_arn" {
  description = "The function's role."
  value       = aws_iam_role.rotation.arn
}
