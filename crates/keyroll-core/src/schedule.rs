//! When a secret rotates next.

use crate::error::SmError;
use crate::model::RotationRules;
use crate::time::Timestamp;

/// The next rotation after a rotation (or the enabling of rotation) at `from`.
pub fn next_rotation(rules: &RotationRules, from: Timestamp) -> Result<Option<Timestamp>, SmError> {
    rules.validate_basic()?;
    if let Some(days) = rules.automatically_after_days {
        return Ok(Some(from.plus_days(days)));
    }
    Ok(None)
}
