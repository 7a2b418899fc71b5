import SchemaBuilder, { BasePlugin, type PothosOutputFieldConfig, type SchemaTypes } from "@pothos/core";

/**
 * Describes what other plugins add without a description: the result union, success type and data
 * field the errors plugin makes for a field with `errors`, and the prisma plugin's connection
 * `totalCount`. Descriptions written on the field itself win.
 */
class GeneratedDescriptionsPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  override onOutputFieldConfig(fieldConfig: PothosOutputFieldConfig<Types>): PothosOutputFieldConfig<Types> {
    if (fieldConfig.name === "totalCount" && !fieldConfig.description) {
      return { ...fieldConfig, description: "How many items the whole list holds, over every page." };
    }
    const options = fieldConfig.pothosOptions as { errors?: ErrorsOptions };
    if (!options.errors) return fieldConfig;
    const field = `${this.buildCache.getTypeConfig(fieldConfig.declaringType ?? fieldConfig.parentType).name}.${fieldConfig.name}`;
    const { union, result, dataField } = options.errors;
    options.errors = {
      ...options.errors,
      union: {
        description: `What ${field} returns: its success type with the result, or a typed error whose code says what went wrong (nothing was changed then).`,
        ...union,
      },
      result: { description: `${field} succeeded.`, ...result },
      dataField: { description: `What ${field} returned.`, ...dataField },
    };
    return fieldConfig;
  }
}

interface ErrorsOptions {
  union?: { description?: string };
  result?: { description?: string };
  dataField?: { description?: string };
}

declare global {
  export namespace PothosSchemaTypes {
    export interface Plugins<Types extends SchemaTypes> {
      generatedDescriptions: GeneratedDescriptionsPlugin<Types>;
    }
  }
}

SchemaBuilder.registerPlugin("generatedDescriptions", GeneratedDescriptionsPlugin);

export default "generatedDescriptions" as const;
