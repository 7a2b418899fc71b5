import SchemaBuilder from "@pothos/core";
import ErrorsPlugin from "@pothos/plugin-errors";
import PrismaPlugin from "@pothos/plugin-prisma";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import GeneratedDescriptionsPlugin from "./generatedDescriptions.ts";
import { nodeVisible } from "./nodeAccess.ts";
import { authScopeAnswers } from "../domain/authorization.ts";
import { AppError, ForbiddenError, NotAuthenticatedError, NotFoundError, ValidationError } from "../domain/errors.ts";
import { prisma } from "../infra/db.ts";
import type PrismaTypes from "../prisma/generated/pothos-types.ts";
import { getDatamodel } from "../prisma/generated/pothos-types.ts";
import type { Context } from "../api/context.ts";
import type { Viewer } from "../domain/viewer.ts";
import type { ApiKeyPermission } from "../prisma/generated/client/client.ts";

const MAX_NODES = 100;

/** The context of a field whose scopes passed: a key was presented. */
type Authenticated = Context & { viewer: Viewer };

export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  DefaultFieldNullability: false;
  Scalars: {
    ID: { Input: string; Output: string | number | bigint };
    DateTime: { Input: Date; Output: Date };
    /** US dollars as an exact decimal string; integer micro-dollars inside (a safe-integer number where SQL's JSON carries them). */
    Money: { Input: bigint; Output: bigint | number };
  };
  /** Answered by domain/authorization.ts, which says which key may do what. */
  AuthScopes: {
    /** Any valid key. */
    authenticated: boolean;
    /** An account or session key holding this permission. */
    permission: ApiKeyPermission;
    /** A machine's agent (its MACHINE key). */
    agent: boolean;
    /** This instance's own key. */
    instanceKey: number;
    /** An operator's account or session key holding this permission. */
    operator: ApiKeyPermission;
  };
  AuthContexts: {
    authenticated: Authenticated;
    permission: Authenticated;
    agent: Authenticated & { viewer: { machineId: number } };
    instanceKey: Authenticated;
    operator: Authenticated;
  };
}>({
  defaultFieldNullability: false,
  // Errors wraps ScopeAuth so that unauthorizedError's AppErrors become union data on mutations.
  // GeneratedDescriptions comes last: field configs pass through the plugins last to first, so it
  // describes a field's result types before Errors makes them.
  plugins: [ErrorsPlugin, ScopeAuthPlugin, PrismaPlugin, RelayPlugin, GeneratedDescriptionsPlugin],
  scopeAuth: {
    // A subscription's scopes are checked when it starts, not again for each event: a connection's
    // key does not change, and a metering tick runs every balance subscription at once.
    authorizeOnSubscribe: true,
    authScopes: (context) => authScopeAnswers(context.viewer),
    unauthorizedError: (_parent, context) =>
      context.viewer ? new ForbiddenError() : new NotAuthenticatedError(),
  },
  errors: {
    // Only AppErrors become data; anything else is a bug and is masked by the server.
    defaultTypes: [AppError, ValidationError, NotFoundError, NotAuthenticatedError, ForbiddenError],
  },
  prisma: {
    client: prisma,
    dmmf: getDatamodel(),
    exposeDescriptions: true,
    filterConnectionTotalCount: true,
    onUnusedQuery: process.env.NODE_ENV === "production" ? null : "warn",
  },
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
    // Readable ids ("Machine:12") so people can type them in the CLI.
    encodeGlobalID: (typename, id) => `${typename}:${id}`,
    decodeGlobalID: (globalID) => {
      const separator = globalID.lastIndexOf(":");
      return { typename: globalID.slice(0, separator), id: globalID.slice(separator + 1) };
    },
    // node/nodes apply the same visibility as every other path to an object (nodeAccess.ts).
    nodeQueryOptions: {
      nullable: true,
      description:
        "Any object by its global id, such as \"Machine:12\" or \"Offer:12-4\": your own account's objects, public ones (offers, listed machines, public templates). Null for an id that names nothing you may see.",
      args: { id: { description: "A global id, such as \"Instance:7\"." } },
      resolve: async (_root, args, context, _info, resolveNode) =>
        (await nodeVisible(context.viewer, args.id)) ? resolveNode(args.id) : null,
    },
    nodesQueryOptions: {
      nullable: { list: false, items: true },
      description: "Objects by their global ids, in the order asked (at most 100); null where node(id) would be.",
      args: { ids: { description: "Global ids, such as [\"Instance:7\", \"Machine:12\"]." } },
      resolve: async (_root, args, context, _info, resolveNodes) => {
        if (args.ids.length > MAX_NODES) throw new ValidationError([{ path: ["ids"], message: `at most ${MAX_NODES} ids` }]);
        const ids = args.ids;
        const visible = await Promise.all(ids.map((id) => nodeVisible(context.viewer, id)));
        // The plugin's resolveNodes loads `args.ids` whatever it is passed, so the ids to load replace them.
        args.ids = ids.filter((_, i) => visible[i]);
        const nodes = await resolveNodes(args.ids);
        let next = 0;
        return visible.map((shown) => (shown ? nodes[next++] : null));
      },
    },
    nodeTypeOptions: { description: "An object with a global id, such as \"Machine:12\"." },
    idFieldOptions: { description: "The global id: the type's name and its number, such as \"Machine:12\"." },
    pageInfoTypeOptions: { description: "Where a page of a list stands in the whole list." },
    hasNextPageFieldOptions: { description: "More items follow: ask again with `after: endCursor`." },
    hasPreviousPageFieldOptions: { description: "Items come before this page: ask again with `before: startCursor`." },
    startCursorFieldOptions: { description: "The cursor of the page's first item; null for an empty page." },
    endCursorFieldOptions: { description: "The cursor of the page's last item; null for an empty page." },
    defaultConnectionTypeOptions: { description: "One page of a list, with where it stands in the whole list." },
    defaultEdgeTypeOptions: { description: "One item of a list page, with its cursor." },
    edgesFieldOptions: { description: "The page's items, in the list's order." },
    pageInfoFieldOptions: { description: "Whether more items come before or after this page, and the cursors to ask for them." },
    cursorFieldOptions: { description: "Pass as `after` (or `before`) to get the items after (or before) this one." },
    nodeFieldOptions: { description: "The item." },
    // Every connection also lists its page's items directly, for clients that need no cursors.
    nodesOnConnection: { description: "The page's items, in the list's order (the edges' nodes)." },
    firstArgOptions: { description: "Page size from the start (or after `after`): 0 to 100, default 20; the rest follows on later pages." },
    afterArgOptions: { description: "The cursor of the item to start after (pageInfo.endCursor of the page before)." },
    lastArgOptions: { description: "Page size from the end (or before `before`): 0 to 100." },
    beforeArgOptions: { description: "The cursor of the item to end before (pageInfo.startCursor of the page after)." },
  },
});
