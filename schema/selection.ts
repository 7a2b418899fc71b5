/**
 * The Prisma query Pothos planned for a prismaField, usable as is: a mutation result of which the
 * client selects only `__typename` plans an empty select, which Prisma refuses.
 */
export function selection<Q extends { select?: object }>(query: Q): Q | { select: { id: true } } {
  return query.select && Object.keys(query.select).length === 0 ? { select: { id: true } } : query;
}
