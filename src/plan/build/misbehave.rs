//! `--misbehave KIND:FRACTION` (repeatable) / `misbehave = ["KIND:FRACTION", …]`: the flags
//! replace the profile's list; the list is validated as a whole (see `plan::misbehave`).

use super::super::error::{Origin, PlanError};
use super::super::misbehave::{Misbehave, parse_misbehave, validate};
use super::super::profile::Profile;
use crate::plan::Overrides;

pub(super) fn misbehave(args: &Overrides, p: &Profile) -> Result<Vec<Misbehave>, PlanError> {
    if !args.misbehave.is_empty() {
        validate(&args.misbehave).map_err(|e| Origin::Flag("--misbehave").invalid(e))?;
        return Ok(args.misbehave.clone());
    }
    let mut list = Vec::with_capacity(p.misbehave.len());
    for l in &p.misbehave {
        list.push(parse_misbehave(&l.value).map_err(|e| l.origin.invalid(e))?);
        validate(&list).map_err(|e| l.origin.invalid(e))?;
    }
    Ok(list)
}
