/**
 * One-click training as a service: the plan shown before Start, and the pipeline job itself,
 * started from the studio (a child process) or followed by `contrast train` (this process).
 */
import type { PipelinePlanView } from '../contract/operations.ts';
import type { BackendChoice } from '../contract/train_options.ts';
import { describePlan, planPipeline, type PipelinePlan } from '../engine/stages/budget_plan.ts';
import { projectFigures } from '../engine/stages/pipeline_figures.ts';
import { createPipelineRun, pipelineModel } from '../engine/stages/stage_config.ts';
import type { Project } from '../store/project.ts';
import type { Handlers } from './handlers.ts';
import type { Session } from './session.ts';
import { startInChild } from './training.ts';

/** fromRunId: the finished pretrain run (an imported network) to start from; default: the plan's choice. */
export function planOneClick(project: Project, budgetMinutes: number, fromRunId?: number): PipelinePlanView {
  return viewOf(planPipeline(budgetMinutes, projectFigures(project, pipelineModel(project, fromRunId), fromRunId)));
}

function viewOf(plan: PipelinePlan): PipelinePlanView {
  return {
    text: describePlan(plan),
    reason: plan.reason,
    recipe: plan.recipe,
    budgetSeconds: plan.budgetSeconds,
    stages: plan.stages.map((s) => ({ label: s.supervised ? 'labels only' : s.stage, seconds: Math.round(s.seconds), epochs: s.epochs })),
  };
}

/** Records a queued pipeline run (checking the project can be trained); the job runs it. */
export function createOneClickRun(project: Project, budgetMinutes: number, options: { seed?: number; backend?: BackendChoice; fromRunId?: number } = {}): number {
  return createPipelineRun(project, { minutes: budgetMinutes, ...options }).runId;
}

export function pipelineHandlers(session: Session): Pick<Handlers, 'pipeline.plan' | 'pipeline.start'> {
  const project = () => session.requireProject();
  return {
    async 'pipeline.plan'({ budgetMinutes, fromRunId }) {
      return planOneClick(project(), budgetMinutes, fromRunId);
    },
    async 'pipeline.start'({ budgetMinutes, fromRunId }) {
      return { runId: startInChild(session, 'pipeline', () => createOneClickRun(project(), budgetMinutes, { fromRunId })) };
    },
  };
}
