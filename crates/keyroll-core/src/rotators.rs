//! Rotation functions keyroll runs itself, named like AWS's.

/// The function names (last part of a `RotationLambdaARN`) that run keyroll's engine
/// in-process, the target chosen from the secret's `engine` field: `keyroll` and AWS's RDS
/// rotation functions, so secrets configured for AWS rotate unchanged.
pub const BUILTIN_FUNCTIONS: [&str; 7] = [
    "keyroll",
    "SecretsManagerRDSPostgreSQLRotationSingleUser",
    "SecretsManagerRDSPostgreSQLRotationMultiUser",
    "SecretsManagerRDSMySQLRotationSingleUser",
    "SecretsManagerRDSMySQLRotationMultiUser",
    "SecretsManagerRDSMariaDBRotationSingleUser",
    "SecretsManagerRDSMariaDBRotationMultiUser",
];

/// The function name of a Lambda ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`)
/// or of a bare name.
pub fn function_name(arn_or_name: &str) -> &str {
    match arn_or_name.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => arn_or_name,
    }
}

/// Whether keyroll runs this rotation function itself.
pub fn is_builtin(arn_or_name: &str) -> bool {
    BUILTIN_FUNCTIONS.contains(&function_name(arn_or_name))
}

/// The ARN of the built-in `keyroll` function in a region and account.
pub fn builtin_arn(region: &str, account: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:keyroll")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_arns() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:1:function:keyroll"),
            "keyroll"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:1:function:f:PROD"),
            "f"
        );
        assert_eq!(function_name("keyroll"), "keyroll");
        assert!(is_builtin(
            "arn:aws:lambda:us-east-1:123456789012:function:SecretsManagerRDSPostgreSQLRotationSingleUser"
        ));
        assert!(!is_builtin("arn:aws:lambda:us-east-1:1:function:custom"));
    }
}
