/**
 * One-click training as a service: the plan shown before Start, and the pipeline job itself,
 * started from the studio (a child process) or followed by `contrast train` (this process).
 */
import type { PipelinePlanView } from '../contract/operations.ts';
import type { BackendChoice } from '../contract/train_options.ts';
import { describePlan, planPipeline, type PipelinePlan } from '../engine/stages/budget_plan.ts';
import { projectFigures } from '../engine/stages/pipeline_figures.ts';
import { DEFAULT_MODEL, createPipelineRun } from '../engine/stages/stage_config.ts';
import type { Project } from '../store/project.ts';
import type { Handlers } from './handlers.ts';
import type { Session } from './session.ts';
import { startInChild } from './training.ts';

export function planOneClick(project: Project, budgetMinutes: number): PipelinePlanView {
  return viewOf(planPipeline(budgetMinutes, projectFigures(project, DEFAULT_MODEL)));
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
export function createOneClickRun(project: Project, budgetMinutes: number, options: { seed?: number; backend?: BackendChoice } = {}): number {
  return createPipelineRun(project, { minutes: budgetMinutes, ...options }).runId;
}

export function pipelineHandlers(session: Session): Pick<Handlers, 'pipeline.plan' | 'pipeline.start'> {
  const project = () => session.requireProject();
  return {
    async 'pipeline.plan'({ budgetMinutes }) {
      return planOneClick(project(), budgetMinutes);
    },
    async 'pipeline.start'({ budgetMinutes }) {
      return { runId: startInChild(session, 'pipeline', () => createOneClickRun(project(), budgetMinutes)) };
    },
  };
}
