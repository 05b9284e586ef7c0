/**
 * How far labellers agree, from the votes on images more than one of them labelled: Cohen's κ
 * for each pair, specific agreement for each class, and each labeller's pace and agreement with
 * the final label. Plain arithmetic on votes, so it is tested on hand-computed values.
 */
import type { ClassAgreement, LabellerStats, PairAgreement } from '../contract/team.ts';
import type { SharedVote } from '../store/votes.ts';

/** A pause longer than this is a break, not labelling time. */
const BREAK_MS = 5 * 60_000;

export function pairAgreements(votes: SharedVote[]): PairAgreement[] {
  const byImage = votesByImage(votes);
  const authors = [...new Set(votes.map((vote) => vote.author))].sort();
  const pairs: PairAgreement[] = [];
  for (let i = 0; i < authors.length; i++) {
    for (let j = i + 1; j < authors.length; j++) {
      const shared: [number, number][] = [];
      for (const choices of byImage.values()) {
        if (choices.has(authors[i]) && choices.has(authors[j])) shared.push([choices.get(authors[i])!, choices.get(authors[j])!]);
      }
      if (shared.length > 0) pairs.push({ a: authors[i], b: authors[j], ...cohensKappa(shared) });
    }
  }
  return pairs;
}

/** κ = (observed − chance) / (1 − chance), chance from each labeller's own class frequencies. */
export function cohensKappa(shared: [number, number][]): { images: number; observed: number; kappa: number | null } {
  const n = shared.length;
  const observed = shared.filter(([a, b]) => a === b).length / n;
  const frequencyA = frequencies(shared.map(([a]) => a));
  const frequencyB = frequencies(shared.map(([, b]) => b));
  let chance = 0;
  for (const [classId, count] of frequencyA) chance += (count / n) * ((frequencyB.get(classId) ?? 0) / n);
  return { images: n, observed, kappa: chance >= 1 ? null : (observed - chance) / (1 - chance) };
}

/**
 * Specific agreement per class: over every pair of votes on one image, twice the pairs where both
 * chose the class, divided by the votes for the class in all pairs (2·n_cc / (n_c· + n_·c) for two labellers).
 */
export function classAgreements(votes: SharedVote[]): ClassAgreement[] {
  const both = new Map<number, number>();
  const inPairs = new Map<number, number>();
  const voteCount = new Map<number, number>();
  for (const choices of votesByImage(votes).values()) {
    const classes = [...choices.values()];
    for (const classId of classes) voteCount.set(classId, (voteCount.get(classId) ?? 0) + 1);
    for (let i = 0; i < classes.length; i++) {
      for (let j = i + 1; j < classes.length; j++) {
        inPairs.set(classes[i], (inPairs.get(classes[i]) ?? 0) + 1);
        inPairs.set(classes[j], (inPairs.get(classes[j]) ?? 0) + 1);
        if (classes[i] === classes[j]) both.set(classes[i], (both.get(classes[i]) ?? 0) + 1);
      }
    }
  }
  return [...inPairs]
    .map(([classId, count]) => ({ classId, agreement: (2 * (both.get(classId) ?? 0)) / count, votes: voteCount.get(classId) ?? 0 }))
    .sort((a, b) => a.classId - b.classId);
}

export function labellerStats(times: { author: string; createdAt: string }[], shared: SharedVote[]): LabellerStats[] {
  const byAuthor = new Map<string, number[]>();
  for (const { author, createdAt } of times) {
    const list = byAuthor.get(author) ?? [];
    list.push(Date.parse(createdAt));
    byAuthor.set(author, list);
  }
  return [...byAuthor].map(([author, stamps]) => {
    const judged = shared.filter((vote) => vote.author === author && vote.finalClassId !== null);
    return {
      author,
      labels: stamps.length,
      perMinute: pace(stamps),
      agreementWithFinal: judged.length === 0 ? null : judged.filter((vote) => vote.classId === vote.finalClassId).length / judged.length,
    };
  });
}

/** Labels per minute of labelling: each label after the first of a sitting counts, over the time those took. */
function pace(sortedStamps: number[]): number {
  let labels = 0;
  let spentMs = 0;
  for (let i = 1; i < sortedStamps.length; i++) {
    const gap = sortedStamps[i] - sortedStamps[i - 1];
    if (gap > BREAK_MS) continue;
    labels++;
    spentMs += gap;
  }
  return spentMs > 0 ? labels / (spentMs / 60_000) : 0;
}

function votesByImage(votes: SharedVote[]): Map<number, Map<string, number>> {
  const byImage = new Map<number, Map<string, number>>();
  for (const vote of votes) {
    const choices = byImage.get(vote.imageId) ?? new Map<string, number>();
    choices.set(vote.author, vote.classId);
    byImage.set(vote.imageId, choices);
  }
  return byImage;
}

function frequencies(classIds: number[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const classId of classIds) counts.set(classId, (counts.get(classId) ?? 0) + 1);
  return counts;
}
