/**
 * GraphQL enum values from a Prisma enum, each with its description. The descriptions' type names
 * every value, so a value added to the Prisma enum is a type error here until it is described.
 */
export function describedValues<const E extends Record<string, string>>(
  values: E,
  descriptions: Record<E[keyof E], string>,
): { [K in E[keyof E]]: { value: K; description: string } } {
  return Object.fromEntries(
    (Object.values(values) as E[keyof E][]).map((value) => [value, { value, description: descriptions[value] }]),
  ) as { [K in E[keyof E]]: { value: K; description: string } };
}
