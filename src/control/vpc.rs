//! VPC access authorizations: the named VPC instances VPC definitions of backends reach.

use super::{ControlError, ControlPlane, Result, delete, put};
use crate::model::{StageDefinition, VpcAccess, VpcAccessId};
use crate::store::{Entity, Key};

impl ControlPlane {
    /// Creates a VPC access authorization.
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn create_vpc_access(&self, v: VpcAccess) -> Result<VpcAccess> {
        v.validate()?;
        let mut state = self.state.lock().await;
        if state.vpc_access.contains_key(&v.id) {
            return Err(ControlError::AlreadyExists {
                what: "vpc access authorization",
                name: v.name,
            });
        }
        state.check_name_free::<VpcAccess>(&v.name, None)?;
        let w = put(&state, Entity::VpcAccess(v.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(v)
    }

    /// Replaces a VPC access authorization (e.g. a new address); routes using it follow.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`].
    pub async fn update_vpc_access(&self, v: VpcAccess) -> Result<VpcAccess> {
        v.validate()?;
        let mut state = self.state.lock().await;
        state.vpc_access(&v.id)?;
        let w = put(&state, Entity::VpcAccess(v.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(v)
    }

    /// Deletes a VPC access authorization; refused while a stage definition uses it.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::InUse`].
    pub async fn delete_vpc_access(&self, id: &VpcAccessId) -> Result<()> {
        let mut state = self.state.lock().await;
        state.vpc_access(id)?;
        let users: Vec<String> = state
            .backends
            .values()
            .flat_map(|b| {
                b.value.stages.iter().filter_map(move |(s, d)| match d {
                    StageDefinition::Vpc(v) if &v.vpc_access_id == id => {
                        Some(format!("{} ({s})", b.value.name))
                    }
                    _ => None,
                })
            })
            .collect();
        if !users.is_empty() {
            return Err(ControlError::in_use(
                "vpc access authorization",
                id,
                users.join(", "),
            ));
        }
        let w = delete(&state, Key::vpc_access(id));
        self.commit_one(&mut state, w).await
    }

    /// Every VPC access authorization.
    pub async fn vpc_accesses(&self) -> Vec<VpcAccess> {
        self.state.lock().await.by_name(|_: &VpcAccess| true)
    }

    /// One VPC access authorization.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn vpc_access(&self, id: &VpcAccessId) -> Result<VpcAccess> {
        self.state.lock().await.vpc_access(id).cloned()
    }
}
