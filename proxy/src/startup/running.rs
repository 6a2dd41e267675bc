//! The servers and background tasks while lastmile serves, and their drain at shutdown.

use super::Opened;
use crate::admin::Admin;
use crate::approval::Approvals;
use crate::config::Config;
use crate::pipeline::Proxy;
use crate::{policy, server};
use anyhow::Result;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The spawned tasks, and the switch that stops them all.
pub(crate) struct Running {
    pub data_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    data_server: JoinHandle<()>,
    admin_server: JoinHandle<()>,
    reload: JoinHandle<()>,
    sweeper: Option<JoinHandle<()>>,
}

impl Running {
    /// Spawns the approval sweeper, the policy reloader and both servers.
    pub(crate) fn spawn(
        config: &Config,
        data: TcpListener,
        admin: TcpListener,
        opened: Opened,
        admin_state: Arc<Admin>,
    ) -> Result<Running> {
        let (stop, stopped) = watch::channel(false);
        let sweeper = opened
            .approvals
            .map(|queue| spawn_sweeper(queue, opened.proxy.clone(), stopped.clone()));
        let mut reload_stopped = stopped.clone();
        let reload = tokio::spawn(policy::reload::start(opened.policy).run(async move {
            let _ = reload_stopped.wait_for(|s| *s).await;
        }));
        let data_addr = data.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let proxy = opened.proxy;
        let data_server = tokio::spawn(server::serve(
            data,
            move |request| {
                let proxy = proxy.clone();
                async move { proxy.handle(request).await }
            },
            config.server.clone(),
            stopped.clone(),
        ));
        let admin_server = tokio::spawn(server::serve(
            admin,
            move |request| {
                let admin = admin_state.clone();
                async move { admin.handle(request).await }
            },
            config.server.clone(),
            stopped,
        ));
        Ok(Running {
            data_addr,
            admin_addr,
            stop,
            data_server,
            admin_server,
            reload,
            sweeper,
        })
    }

    /// Stops every task and waits for them: the servers finish their open requests.
    pub(crate) async fn drain(self) {
        let _ = self.stop.send(true);
        let _ = tokio::join!(self.data_server, self.admin_server, self.reload);
        if let Some(sweeper) = self.sweeper {
            let _ = sweeper.await;
        }
    }
}

/// Resumes approvals left approved by the last run, then sweeps the queue for expiry
/// until stopped.
fn spawn_sweeper(
    queue: Arc<Approvals>,
    proxy: Arc<Proxy>,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(resume_approved(queue.clone(), proxy));
    tokio::spawn(queue.run_sweeper(stopped))
}

/// Approved before the last stop but never started: nothing was sent, so they run now
/// (the guarded move to `executing` keeps that to one run).
async fn resume_approved(queue: Arc<Approvals>, proxy: Arc<Proxy>) {
    if let Ok(ids) = queue.approved_ids().await {
        for id in ids {
            if let Ok(Some(approval)) = queue.get(&id).await {
                proxy.execute(approval).await;
            }
        }
    }
}
