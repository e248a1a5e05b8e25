import type { WorkflowHandle } from '@temporalio/client';

/**
 * True once the workflow's latest workflow task has completed with no activity,
 * timer or workflow task outstanding. From then on it can only move on an
 * outside event (a signal or an update), so a negative check made at that
 * point ("the sync while paused imported nothing") cannot be overtaken by
 * something the workflow was still about to do, however slow the machine is.
 * A fixed sleep before such a check proves nothing on a loaded machine.
 *
 * Only meaningful for a workflow with no timer of its own pending (an
 * `@on-demand` or paused data source): a scheduled one always has a timer.
 */
export async function waitingOnNothing(handle: Pick<WorkflowHandle, 'fetchHistory'>): Promise<boolean> {
  const { events } = await handle.fetchHistory();
  let workflowTaskOpen = false;
  let activities = 0;
  let timers = 0;
  for (const e of events ?? []) {
    if (e.workflowTaskScheduledEventAttributes) workflowTaskOpen = true;
    if (e.workflowTaskCompletedEventAttributes) workflowTaskOpen = false;
    if (e.activityTaskScheduledEventAttributes) activities++;
    if (e.activityTaskCompletedEventAttributes || e.activityTaskFailedEventAttributes || e.activityTaskTimedOutEventAttributes || e.activityTaskCanceledEventAttributes) activities--;
    if (e.timerStartedEventAttributes) timers++;
    if (e.timerFiredEventAttributes || e.timerCanceledEventAttributes) timers--;
  }
  return !workflowTaskOpen && activities === 0 && timers === 0;
}

/**
 * Whether a data source resource (GET /v1/datasources/:name) shows that the
 * workflow itself has finished the run `runId`: its last run is that one and it
 * is no longer syncing (the state leaves `syncing` only after the run is
 * recorded). The runs listing alone is written before the workflow has
 * processed the end of the run, and a status whose query failed falls back to a
 * state without a last run, so neither is enough on its own.
 */
export function reportsRunFinished(ds: { status?: { state?: string }; lastRun?: { runId?: string; finishedAt?: string | null } | null } | null | undefined, runId: string): boolean {
  return !!ds && ds.lastRun?.runId === runId && !!ds.lastRun.finishedAt && ds.status?.state !== 'syncing';
}
