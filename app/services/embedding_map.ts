/**
 * A 2-D map of a run's embeddings (UMAP) for the Results screen. Computed once per run and kept
 * in the project's cache folder, because UMAP takes seconds and the embeddings of a finished run
 * never change.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UMAP } from 'umap-js';
import { Rng } from '../engine/simclr/random.ts';
import type { Project } from '../store/project.ts';
import { readEmbeddings } from '../store/runs.ts';

/** UMAP's neighbour search grows faster than linearly; a few thousand points show the structure. */
export const MAX_MAP_POINTS = 3000;

export interface MapPosition {
  imageId: number;
  x: number;
  y: number;
}

export async function embeddingMap(project: Project, runId: number): Promise<MapPosition[]> {
  const cacheFile = path.join(project.cacheDir, `embedding-map-${runId}.json`);
  try {
    return JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as MapPosition[];
  } catch {
    // not computed yet
  }
  const rng = new Rng(runId);
  const all = readEmbeddings(project.db, runId);
  const chosen = all.length > MAX_MAP_POINTS ? rng.shuffled(all).slice(0, MAX_MAP_POINTS) : all;
  const positions = await layout(chosen.map((e) => Array.from(e.vector)), () => rng.next());
  const map = chosen.map((e, i) => ({ imageId: e.imageId, x: positions[i][0], y: positions[i][1] }));
  fs.writeFileSync(cacheFile, JSON.stringify(map));
  return map;
}

async function layout(vectors: number[][], random: () => number): Promise<number[][]> {
  if (vectors.length < 4) return vectors.map((_, i) => [i, 0]); // UMAP needs a few neighbours per point
  const umap = new UMAP({ nComponents: 2, nNeighbors: Math.min(15, vectors.length - 1), minDist: 0.1, random });
  // fitAsync yields between epochs, so the server keeps answering while the map is computed.
  return umap.fitAsync(vectors, () => undefined);
}
