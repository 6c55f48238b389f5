//! # keyroll-testkit
