//! Callbacks: a task enqueued with a `callback_url` has its view POSTed there when it ends (done,
//! dead, cancelled), at least once.
//!
//! The delivery is a task of the queue's callback lane ([`QueueKeys::callbacks`]), named like
//! its task, made by the script that ends the task in the same atomic step (see `prelude.lua`,
//! `hand_callback`): no ending is ever without its delivery, and a delivery survives any crash
//! or restart as any task does. A worker on the lane ([`Queue::callbacks`]) delivers, retried with
//! backoff up to its attempt limit, then dead (kept, visible, retryable). The task's view shows how
//! its callback fares ([`CallbackView`]), read from the lane's record.
//!
//! [`QueueKeys::callbacks`]: crate::keys::QueueKeys::callbacks

use std::sync::Arc;

use crate::error::Result;
use crate::name::TaskName;
use crate::queue::Queue;
use crate::task::{CallbackState, CallbackView, State, TaskView};

impl CallbackView {
    /// The callback as its delivery's record (`delivery`, the lane's view of it) tells.
    fn of(delivery: &TaskView) -> Self {
        Self {
            state: match delivery.state {
                State::Done => CallbackState::Delivered,
                State::Dead | State::Cancelled => CallbackState::Failed,
                State::Queued | State::Running | State::Processing => CallbackState::Pending,
            },
            attempts: delivery.attempts,
            last_error: delivery.last_error.clone(),
        }
    }
}

impl Queue {
    /// The queue's callback lane: a queue of deliveries, one per ended task with a callback,
    /// named like the task, with this handle's connection and policies.
    pub fn callbacks(&self) -> Queue {
        self.lane(Arc::new(self.keys().callbacks()))
    }

    /// The view a callback of the task `name` carries: its record, without the callback's own
    /// state (the receiver is that callback); `None` when there is no such task.
    ///
    /// # Errors
    /// [`crate::Error::Redis`] when Redis fails.
    pub async fn callback_body(&self, name: &TaskName) -> Result<Option<TaskView>> {
        Ok(self.record(name).await?.map(|view| TaskView {
            callback: None,
            ..view
        }))
    }

    /// The view of the task `name`, with its callback's state when it has one; `None` when
    /// there is no such task.
    ///
    /// # Errors
    /// [`crate::Error::Redis`] when Redis fails.
    pub async fn get(&self, name: &TaskName) -> Result<Option<TaskView>> {
        let Some(mut view) = self.record(name).await? else {
            return Ok(None);
        };
        if view.callback.is_some()
            && let Some(delivery) = self.callbacks().record(name).await?
        {
            // A delivery older than the task's end belongs to an earlier life of the name.
            if delivery.created_at_ms >= view.updated_at_ms && view.state.is_final() {
                view.callback = Some(CallbackView::of(&delivery));
            }
        }
        Ok(Some(view))
    }
}
