//! Placeholder until the catalog seed lands.
pub async fn seed_demo_catalog(_conn: &mut diesel_async::AsyncPgConnection, _organizer_id: uuid::Uuid) -> anyhow::Result<()> { Ok(()) }
