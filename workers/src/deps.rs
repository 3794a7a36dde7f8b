//! What a job handler gets besides its arguments.

use boxoffice_models::DbPool;

#[derive(Clone)]
pub struct JobDeps {
    pub db: DbPool,
}
