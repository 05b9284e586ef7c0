/**
 * Which unlabelled images to label next. With a model: the ones it is least sure about (highest
 * entropy), taken in turn from k-means clusters of the latest embeddings so the queue does not
 * fill with near-copies of one confusing image. Before any model: a sample spread evenly over
 * clusters (or source folders when there are no embeddings yet).
 */
import path from 'node:path';
import type Database from 'better-sqlite3';
import { Rng } from '../engine/simclr/random.ts';
import { entropy, stillUnlabelled, unlabelledCandidates } from '../store/gallery.ts';
import { imageCount } from '../store/images.ts';
import { readEmbeddings } from '../store/runs.ts';

export interface QueueChoice {
  strategy: 'uncertainty' | 'diverse';
  imageIds: number[];
}

/** Caps the k-means work so a request stays well under a second on 50,000 images. */
const MAX_CANDIDATES = 4000;
const KMEANS_ITERATIONS = 12;

/**
 * How many images one ranking covers. Ranking reads every unlabelled image (and its prediction and
 * embedding) and clusters them; done per request, it held the server's one thread for every
 * teammate's "Label next". A ranking is kept and handed out in order until it runs short.
 */
const RANKED_POOL = 60;

/**
 * The ranked images of the open project, handed out batch by batch. Ranked again when it cannot
 * fill a batch, when the model, the embeddings or the set of images change, or when labels are
 * taken away (an unlabelled image may belong in it again).
 */
export class QueuePool {
  private ranked: { key: string; strategy: QueueChoice['strategy']; imageIds: number[] } | null = null;

  invalidate(): void {
    this.ranked = null;
  }

  next(db: Database.Database, limit: number, predictionRunId: number | null, embeddingRunId: number | null, exclude: ReadonlySet<number>): QueueChoice {
    const key = `${predictionRunId}|${embeddingRunId}|${imageCount(db)}`;
    if (this.ranked?.key === key) {
      const imageIds = this.available(db, exclude);
      if (imageIds.length >= limit) return { strategy: this.ranked.strategy, imageIds: imageIds.slice(0, limit) };
    }
    const choice = chooseNext(db, Math.max(RANKED_POOL, limit), predictionRunId, embeddingRunId, 1, exclude);
    this.ranked = { key, ...choice };
    return { strategy: choice.strategy, imageIds: choice.imageIds.slice(0, limit) };
  }

  /** The ranked images nobody labelled since, in rank order, less those reserved for others. */
  private available(db: Database.Database, exclude: ReadonlySet<number>): number[] {
    const ranked = this.ranked!;
    const unlabelled = stillUnlabelled(db, ranked.imageIds);
    ranked.imageIds = ranked.imageIds.filter((id) => unlabelled.has(id));
    return ranked.imageIds.filter((id) => !exclude.has(id));
  }
}

export function chooseNext(
  db: Database.Database,
  limit: number,
  predictionRunId: number | null,
  embeddingRunId: number | null,
  seed = 1,
  /** Images reserved for someone else (leases of teammates labelling at the same time). */
  exclude: ReadonlySet<number> = new Set(),
): QueueChoice {
  const rng = new Rng(seed);
  const unlabelled = unlabelledCandidates(db, predictionRunId).filter((row) => !exclude.has(row.id));
  if (unlabelled.length === 0) return { strategy: predictionRunId ? 'uncertainty' : 'diverse', imageIds: [] };

  const vectors = embeddingRunId ? new Map(readEmbeddings(db, embeddingRunId).map((e) => [e.imageId, e.vector])) : new Map();
  const withPrediction = unlabelled.filter((row) => row.probabilities);
  if (predictionRunId && withPrediction.length > 0) {
    const scored = withPrediction
      .map((row) => ({ id: row.id, score: entropy(row.probabilities!) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, MAX_CANDIDATES);
    const groups = clusterGroups(scored, (item) => vectors.get(item.id), limit, rng);
    return { strategy: 'uncertainty', imageIds: roundRobin(groups, limit) };
  }

  const sample = rng.shuffled(unlabelled).slice(0, MAX_CANDIDATES);
  const hasVectors = sample.some((row) => vectors.has(row.id));
  const groups = hasVectors ? clusterGroups(sample, (row) => vectors.get(row.id), limit, rng) : byFolder(sample);
  return { strategy: 'diverse', imageIds: roundRobin(groups, limit) };
}

/**
 * Splits items (kept in their order) into k-means clusters of their vectors; items without a
 * vector form one more group. Clusters are ordered by their first item, so the best-ranked
 * item of the whole list still comes first.
 */
function clusterGroups<T extends { id: number }>(
  items: T[],
  vectorOf: (item: T) => Float32Array | undefined,
  limit: number,
  rng: Rng,
): T[][] {
  const withVector = items.filter((item) => vectorOf(item));
  const k = Math.min(Math.max(2, Math.ceil(Math.sqrt(limit * 2))), withVector.length);
  const assignment = k > 0 ? kmeans(withVector.map((item) => vectorOf(item)!), k, rng) : [];
  const clusters: T[][] = Array.from({ length: k }, () => []);
  withVector.forEach((item, i) => clusters[assignment[i]].push(item));
  const rest = items.filter((item) => !vectorOf(item));
  return [...clusters, rest].filter((group) => group.length > 0).sort((a, b) => items.indexOf(a[0]) - items.indexOf(b[0]));
}

function byFolder<T extends { path: string }>(items: T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const folder = path.dirname(item.path);
    const group = groups.get(folder);
    if (group) group.push(item);
    else groups.set(folder, [item]);
  }
  return [...groups.values()];
}

function roundRobin<T extends { id: number }>(groups: T[][], limit: number): number[] {
  const chosen: number[] = [];
  for (let round = 0; chosen.length < limit; round++) {
    let took = false;
    for (const group of groups) {
      if (round < group.length && chosen.length < limit) {
        chosen.push(group[round].id);
        took = true;
      }
    }
    if (!took) break;
  }
  return chosen;
}

/** Lloyd's k-means with k-means++ seeding on cosine-normalised vectors; returns each vector's cluster. */
export function kmeans(raw: Float32Array[], k: number, rng: Rng): number[] {
  const vectors = raw.map(normalise);
  const centres: Float32Array[] = [vectors[rng.int(vectors.length)]];
  const nearest = vectors.map((v) => distance(v, centres[0]));
  while (centres.length < k) {
    const total = nearest.reduce((sum, d) => sum + d, 0);
    let pick = rng.next() * total;
    let index = 0;
    while (index < vectors.length - 1 && pick > nearest[index]) pick -= nearest[index++];
    centres.push(vectors[index]);
    vectors.forEach((v, i) => (nearest[i] = Math.min(nearest[i], distance(v, vectors[index]))));
  }
  const assignment = new Array<number>(vectors.length).fill(0);
  for (let iteration = 0; iteration < KMEANS_ITERATIONS; iteration++) {
    let moved = false;
    vectors.forEach((v, i) => {
      let best = 0;
      for (let c = 1; c < k; c++) if (distance(v, centres[c]) < distance(v, centres[best])) best = c;
      if (best !== assignment[i]) moved = true;
      assignment[i] = best;
    });
    for (let c = 0; c < k; c++) {
      const members = vectors.filter((_, i) => assignment[i] === c);
      if (members.length > 0) centres[c] = normalise(mean(members));
    }
    if (!moved && iteration > 0) break;
  }
  return assignment;
}

function normalise(v: Float32Array): Float32Array {
  let squares = 0;
  for (const x of v) squares += x * x;
  const norm = Math.sqrt(squares) || 1;
  return v.map((x) => x / norm);
}

function mean(vectors: Float32Array[]): Float32Array {
  const out = new Float32Array(vectors[0].length);
  for (const v of vectors) for (let i = 0; i < v.length; i++) out[i] += v[i] / vectors.length;
  return out;
}

function distance(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return sum;
}
