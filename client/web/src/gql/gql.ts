/* eslint-disable */
import * as types from './graphql.ts';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  subscription HeaderBalance {\n    balance {\n      id\n      email\n      balance\n    }\n  }\n": typeof types.HeaderBalanceDocument,
    "\n  fragment AuthResult on AuthPayload {\n    apiKey {\n      token\n    }\n    user {\n      id\n      email\n    }\n  }\n": typeof types.AuthResultFragmentDoc,
    "\n  mutation Login($email: String!, $password: String!) {\n    login(email: $email, password: $password) {\n      __typename\n      ... on MutationLoginSuccess {\n        data {\n          ...AuthResult\n        }\n      }\n      ... on Error {\n        code\n        message\n      }\n      ... on ValidationError {\n        issues {\n          path\n          message\n        }\n      }\n    }\n  }\n": typeof types.LoginDocument,
    "\n  mutation Signup($email: String!, $password: String!) {\n    signup(email: $email, password: $password) {\n      __typename\n      ... on MutationSignupSuccess {\n        data {\n          ...AuthResult\n        }\n      }\n      ... on Error {\n        code\n        message\n      }\n      ... on ValidationError {\n        issues {\n          path\n          message\n        }\n      }\n    }\n  }\n": typeof types.SignupDocument,
    "\n  query SearchOffers($query: String, $filter: OfferFilter, $orderBy: [OfferOrder!], $first: Int, $after: String, $storageGb: Float) {\n    offers(query: $query, filter: $filter, orderBy: $orderBy, first: $first, after: $after, storageGb: $storageGb) {\n      edges {\n        node {\n          id\n          gpuName\n          numGpus\n          gpuRam\n          totalFlops\n          dlperf\n          dlperfPerDphTotal\n          reliability\n          geolocation\n          countryCode\n          cpuCores\n          cpuRam\n          diskSpace\n          inetDown\n          inetUp\n          durationDays\n          dphTotal\n          pricePerGpuHour\n          minBid\n          winningBid\n          verified\n          datacenter\n          rentable\n          cudaMaxGood\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": typeof types.SearchOffersDocument,
    "\n  query GpuModels {\n    marketStats {\n      gpuName\n    }\n  }\n": typeof types.GpuModelsDocument,
};
const documents: Documents = {
    "\n  subscription HeaderBalance {\n    balance {\n      id\n      email\n      balance\n    }\n  }\n": types.HeaderBalanceDocument,
    "\n  fragment AuthResult on AuthPayload {\n    apiKey {\n      token\n    }\n    user {\n      id\n      email\n    }\n  }\n": types.AuthResultFragmentDoc,
    "\n  mutation Login($email: String!, $password: String!) {\n    login(email: $email, password: $password) {\n      __typename\n      ... on MutationLoginSuccess {\n        data {\n          ...AuthResult\n        }\n      }\n      ... on Error {\n        code\n        message\n      }\n      ... on ValidationError {\n        issues {\n          path\n          message\n        }\n      }\n    }\n  }\n": types.LoginDocument,
    "\n  mutation Signup($email: String!, $password: String!) {\n    signup(email: $email, password: $password) {\n      __typename\n      ... on MutationSignupSuccess {\n        data {\n          ...AuthResult\n        }\n      }\n      ... on Error {\n        code\n        message\n      }\n      ... on ValidationError {\n        issues {\n          path\n          message\n        }\n      }\n    }\n  }\n": types.SignupDocument,
    "\n  query SearchOffers($query: String, $filter: OfferFilter, $orderBy: [OfferOrder!], $first: Int, $after: String, $storageGb: Float) {\n    offers(query: $query, filter: $filter, orderBy: $orderBy, first: $first, after: $after, storageGb: $storageGb) {\n      edges {\n        node {\n          id\n          gpuName\n          numGpus\n          gpuRam\n          totalFlops\n          dlperf\n          dlperfPerDphTotal\n          reliability\n          geolocation\n          countryCode\n          cpuCores\n          cpuRam\n          diskSpace\n          inetDown\n          inetUp\n          durationDays\n          dphTotal\n          pricePerGpuHour\n          minBid\n          winningBid\n          verified\n          datacenter\n          rentable\n          cudaMaxGood\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": types.SearchOffersDocument,
    "\n  query GpuModels {\n    marketStats {\n      gpuName\n    }\n  }\n": types.GpuModelsDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription HeaderBalance {\n    balance {\n      id\n      email\n      balance\n    }\n  }\n"): (typeof documents)["\n  subscription HeaderBalance {\n    balance {\n      id\n      email\n      balance\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment AuthResult on AuthPayload {\n    apiKey {\n      token\n    }\n    user {\n      id\n      email\n    }\n  }\n"): (typeof documents)["\n  fragment AuthResult on AuthPayload {\n    apiKey {\n      token\n    }\n    user {\n      id\n      email\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Login($email: String!, $password: String!) {\n    login(email: $email, password: $password) {\n      __typename\n      ... on MutationLoginSuccess {\n        data {\n          ...AuthResult\n        }\n      }\n      ... on Error {\n        code\n        message\n      }\n      ... on ValidationError {\n        issues {\n          path\n          message\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation Login($email: String!, $password: String!) {\n    login(email: $email, password: $password) {\n      __typename\n      ... on MutationLoginSuccess {\n        data {\n          ...AuthResult\n        }\n      }\n      ... on Error {\n        code\n        message\n      }\n      ... on ValidationError {\n        issues {\n          path\n          message\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Signup($email: String!, $password: String!) {\n    signup(email: $email, password: $password) {\n      __typename\n      ... on MutationSignupSuccess {\n        data {\n          ...AuthResult\n        }\n      }\n      ... on Error {\n        code\n        message\n      }\n      ... on ValidationError {\n        issues {\n          path\n          message\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation Signup($email: String!, $password: String!) {\n    signup(email: $email, password: $password) {\n      __typename\n      ... on MutationSignupSuccess {\n        data {\n          ...AuthResult\n        }\n      }\n      ... on Error {\n        code\n        message\n      }\n      ... on ValidationError {\n        issues {\n          path\n          message\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query SearchOffers($query: String, $filter: OfferFilter, $orderBy: [OfferOrder!], $first: Int, $after: String, $storageGb: Float) {\n    offers(query: $query, filter: $filter, orderBy: $orderBy, first: $first, after: $after, storageGb: $storageGb) {\n      edges {\n        node {\n          id\n          gpuName\n          numGpus\n          gpuRam\n          totalFlops\n          dlperf\n          dlperfPerDphTotal\n          reliability\n          geolocation\n          countryCode\n          cpuCores\n          cpuRam\n          diskSpace\n          inetDown\n          inetUp\n          durationDays\n          dphTotal\n          pricePerGpuHour\n          minBid\n          winningBid\n          verified\n          datacenter\n          rentable\n          cudaMaxGood\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n"): (typeof documents)["\n  query SearchOffers($query: String, $filter: OfferFilter, $orderBy: [OfferOrder!], $first: Int, $after: String, $storageGb: Float) {\n    offers(query: $query, filter: $filter, orderBy: $orderBy, first: $first, after: $after, storageGb: $storageGb) {\n      edges {\n        node {\n          id\n          gpuName\n          numGpus\n          gpuRam\n          totalFlops\n          dlperf\n          dlperfPerDphTotal\n          reliability\n          geolocation\n          countryCode\n          cpuCores\n          cpuRam\n          diskSpace\n          inetDown\n          inetUp\n          durationDays\n          dphTotal\n          pricePerGpuHour\n          minBid\n          winningBid\n          verified\n          datacenter\n          rentable\n          cudaMaxGood\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query GpuModels {\n    marketStats {\n      gpuName\n    }\n  }\n"): (typeof documents)["\n  query GpuModels {\n    marketStats {\n      gpuName\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;