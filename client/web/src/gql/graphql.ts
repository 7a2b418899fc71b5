/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';
/** A structured alternative to `query`; both apply, and this wins on the same field and operator. */
export type OfferFilter = {
  /** Any of these two-letter country codes. */
  countries?: Array<string> | null | undefined;
  datacenter?: boolean | null | undefined;
  /** Any of these GPU models. */
  gpuNames?: Array<string> | null | undefined;
  maxDphTotal?: string | null | undefined;
  maxNumGpus?: number | null | undefined;
  minCudaVersion?: number | null | undefined;
  minDlperf?: number | null | undefined;
  minDurationDays?: number | null | undefined;
  minGpuRamGb?: number | null | undefined;
  minInetDownMbps?: number | null | undefined;
  minNumGpus?: number | null | undefined;
  minReliability?: number | null | undefined;
  /** Absent: rentable only (the default). null: both. */
  rentable?: boolean | null | undefined;
  /** Absent: verified only (the default). null: both. */
  verified?: boolean | null | undefined;
};

export type OfferOrder = {
  direction: OfferOrderDirection;
  field: OfferOrderField;
};

export type OfferOrderDirection =
  | 'ASC'
  | 'DESC';

export type OfferOrderField =
  /** CUDA compute capability × 100 (860 for 8.6) */
  | 'COMPUTE_CAP'
  /** CPU cores of the machine */
  | 'CPU_CORES'
  /** system RAM, GB */
  | 'CPU_RAM'
  /** highest CUDA version the driver supports */
  | 'CUDA_MAX_GOOD'
  /** disk bandwidth, MB/s */
  | 'DISK_BW'
  /** disk space, GB */
  | 'DISK_SPACE'
  /** DLPerf of the offer's GPUs */
  | 'DLPERF'
  /** DLPerf per $/hr */
  | 'DLPERF_PER_DPHTOTAL'
  /** $/hr for the GPUs and the requested storage */
  | 'DPH_TOTAL'
  /** days until the listing's end date */
  | 'DURATION'
  /** TFLOPS per $/hr */
  | 'FLOPS_PER_DPHTOTAL'
  /** GPU memory bandwidth, GB/s */
  | 'GPU_MEM_BW'
  /** VRAM per GPU, GB */
  | 'GPU_RAM'
  /** VRAM of all the offer's GPUs, GB */
  | 'GPU_TOTAL_RAM'
  /** host id */
  | 'HOST_ID'
  /** download bandwidth, Mbps */
  | 'INET_DOWN'
  /** download, $/GB */
  | 'INET_DOWN_COST'
  /** upload bandwidth, Mbps */
  | 'INET_UP'
  /** upload, $/GB */
  | 'INET_UP_COST'
  /** machine id */
  | 'MACHINE_ID'
  /** lowest interruptible bid per GPU, $/hr */
  | 'MIN_BID'
  /** GPUs in the offer */
  | 'NUM_GPUS'
  /** PCIe bandwidth per GPU, GB/s */
  | 'PCIE_BW'
  /** reliability estimate, 0 to 1 */
  | 'RELIABILITY'
  /** the default ranking: DLPerf per $/hr × reliability³ */
  | 'SCORE'
  /** storage, $/GB-month */
  | 'STORAGE_COST'
  /** FP32 TFLOPS of all the offer's GPUs */
  | 'TOTAL_FLOPS';

export type HeaderBalanceSubscriptionVariables = Exact<{ [key: string]: never; }>;


export type HeaderBalanceSubscription = { balance: { id: string, email: string, balance: string } };

export type AuthResultFragment = { apiKey: { token: string }, user: { id: string, email: string } };

export type LoginMutationVariables = Exact<{
  email: string;
  password: string;
}>;


export type LoginMutation = { login:
    | { __typename: 'BaseError', code: string, message: string }
    | { __typename: 'ForbiddenError', code: string, message: string }
    | { __typename: 'InvalidCredentialsError', code: string, message: string }
    | { __typename: 'MutationLoginSuccess', data: { apiKey: { token: string }, user: { id: string, email: string } } }
    | { __typename: 'NotAuthenticatedError', code: string, message: string }
    | { __typename: 'NotFoundError', code: string, message: string }
    | { __typename: 'RateLimitedError', code: string, message: string }
    | { __typename: 'ValidationError', code: string, message: string, issues: Array<{ path: Array<string>, message: string }> }
   };

export type SignupMutationVariables = Exact<{
  email: string;
  password: string;
}>;


export type SignupMutation = { signup:
    | { __typename: 'BaseError', code: string, message: string }
    | { __typename: 'ConflictError', code: string, message: string }
    | { __typename: 'ForbiddenError', code: string, message: string }
    | { __typename: 'MutationSignupSuccess', data: { apiKey: { token: string }, user: { id: string, email: string } } }
    | { __typename: 'NotAuthenticatedError', code: string, message: string }
    | { __typename: 'NotFoundError', code: string, message: string }
    | { __typename: 'RateLimitedError', code: string, message: string }
    | { __typename: 'ValidationError', code: string, message: string, issues: Array<{ path: Array<string>, message: string }> }
   };

export type SearchOffersQueryVariables = Exact<{
  query?: string | null | undefined;
  filter?: OfferFilter | null | undefined;
  orderBy?: Array<OfferOrder> | OfferOrder | null | undefined;
  first?: number | null | undefined;
  after?: string | null | undefined;
  storageGb?: number | null | undefined;
}>;


export type SearchOffersQuery = { offers: { edges: Array<{ node: { id: string, gpuName: string, numGpus: number, gpuRam: number, totalFlops: number, dlperf: number, dlperfPerDphTotal: number, reliability: number, geolocation: string, countryCode: string, cpuCores: number, cpuRam: number, diskSpace: number, inetDown: number, inetUp: number, durationDays: number, dphTotal: string, pricePerGpuHour: string, minBid: string, winningBid: string | null, verified: boolean, datacenter: boolean, rentable: boolean, cudaMaxGood: number } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export type GpuModelsQueryVariables = Exact<{ [key: string]: never; }>;


export type GpuModelsQuery = { marketStats: Array<{ gpuName: string }> };

export const AuthResultFragmentDoc = {"kind":"Document","definitions":[{"kind":"FragmentDefinition","name":{"kind":"Name","value":"AuthResult"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"AuthPayload"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"apiKey"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"token"}}]}},{"kind":"Field","name":{"kind":"Name","value":"user"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"email"}}]}}]}}]} as unknown as DocumentNode<AuthResultFragment, unknown>;
export const HeaderBalanceDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"subscription","name":{"kind":"Name","value":"HeaderBalance"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"balance"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"email"}},{"kind":"Field","name":{"kind":"Name","value":"balance"}}]}}]}}]} as unknown as DocumentNode<HeaderBalanceSubscription, HeaderBalanceSubscriptionVariables>;
export const LoginDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"Login"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"email"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"password"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"login"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"email"},"value":{"kind":"Variable","name":{"kind":"Name","value":"email"}}},{"kind":"Argument","name":{"kind":"Name","value":"password"},"value":{"kind":"Variable","name":{"kind":"Name","value":"password"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"__typename"}},{"kind":"InlineFragment","typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"MutationLoginSuccess"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"data"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"AuthResult"}}]}}]}},{"kind":"InlineFragment","typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Error"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"code"}},{"kind":"Field","name":{"kind":"Name","value":"message"}}]}},{"kind":"InlineFragment","typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"ValidationError"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"issues"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"path"}},{"kind":"Field","name":{"kind":"Name","value":"message"}}]}}]}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"AuthResult"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"AuthPayload"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"apiKey"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"token"}}]}},{"kind":"Field","name":{"kind":"Name","value":"user"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"email"}}]}}]}}]} as unknown as DocumentNode<LoginMutation, LoginMutationVariables>;
export const SignupDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"mutation","name":{"kind":"Name","value":"Signup"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"email"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"password"}},"type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"signup"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"email"},"value":{"kind":"Variable","name":{"kind":"Name","value":"email"}}},{"kind":"Argument","name":{"kind":"Name","value":"password"},"value":{"kind":"Variable","name":{"kind":"Name","value":"password"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"__typename"}},{"kind":"InlineFragment","typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"MutationSignupSuccess"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"data"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"FragmentSpread","name":{"kind":"Name","value":"AuthResult"}}]}}]}},{"kind":"InlineFragment","typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"Error"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"code"}},{"kind":"Field","name":{"kind":"Name","value":"message"}}]}},{"kind":"InlineFragment","typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"ValidationError"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"issues"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"path"}},{"kind":"Field","name":{"kind":"Name","value":"message"}}]}}]}}]}}]}},{"kind":"FragmentDefinition","name":{"kind":"Name","value":"AuthResult"},"typeCondition":{"kind":"NamedType","name":{"kind":"Name","value":"AuthPayload"}},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"apiKey"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"token"}}]}},{"kind":"Field","name":{"kind":"Name","value":"user"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"email"}}]}}]}}]} as unknown as DocumentNode<SignupMutation, SignupMutationVariables>;
export const SearchOffersDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"SearchOffers"},"variableDefinitions":[{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"query"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"filter"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"OfferFilter"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"orderBy"}},"type":{"kind":"ListType","type":{"kind":"NonNullType","type":{"kind":"NamedType","name":{"kind":"Name","value":"OfferOrder"}}}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"first"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Int"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"after"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"String"}}},{"kind":"VariableDefinition","variable":{"kind":"Variable","name":{"kind":"Name","value":"storageGb"}},"type":{"kind":"NamedType","name":{"kind":"Name","value":"Float"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"offers"},"arguments":[{"kind":"Argument","name":{"kind":"Name","value":"query"},"value":{"kind":"Variable","name":{"kind":"Name","value":"query"}}},{"kind":"Argument","name":{"kind":"Name","value":"filter"},"value":{"kind":"Variable","name":{"kind":"Name","value":"filter"}}},{"kind":"Argument","name":{"kind":"Name","value":"orderBy"},"value":{"kind":"Variable","name":{"kind":"Name","value":"orderBy"}}},{"kind":"Argument","name":{"kind":"Name","value":"first"},"value":{"kind":"Variable","name":{"kind":"Name","value":"first"}}},{"kind":"Argument","name":{"kind":"Name","value":"after"},"value":{"kind":"Variable","name":{"kind":"Name","value":"after"}}},{"kind":"Argument","name":{"kind":"Name","value":"storageGb"},"value":{"kind":"Variable","name":{"kind":"Name","value":"storageGb"}}}],"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"edges"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"node"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"id"}},{"kind":"Field","name":{"kind":"Name","value":"gpuName"}},{"kind":"Field","name":{"kind":"Name","value":"numGpus"}},{"kind":"Field","name":{"kind":"Name","value":"gpuRam"}},{"kind":"Field","name":{"kind":"Name","value":"totalFlops"}},{"kind":"Field","name":{"kind":"Name","value":"dlperf"}},{"kind":"Field","name":{"kind":"Name","value":"dlperfPerDphTotal"}},{"kind":"Field","name":{"kind":"Name","value":"reliability"}},{"kind":"Field","name":{"kind":"Name","value":"geolocation"}},{"kind":"Field","name":{"kind":"Name","value":"countryCode"}},{"kind":"Field","name":{"kind":"Name","value":"cpuCores"}},{"kind":"Field","name":{"kind":"Name","value":"cpuRam"}},{"kind":"Field","name":{"kind":"Name","value":"diskSpace"}},{"kind":"Field","name":{"kind":"Name","value":"inetDown"}},{"kind":"Field","name":{"kind":"Name","value":"inetUp"}},{"kind":"Field","name":{"kind":"Name","value":"durationDays"}},{"kind":"Field","name":{"kind":"Name","value":"dphTotal"}},{"kind":"Field","name":{"kind":"Name","value":"pricePerGpuHour"}},{"kind":"Field","name":{"kind":"Name","value":"minBid"}},{"kind":"Field","name":{"kind":"Name","value":"winningBid"}},{"kind":"Field","name":{"kind":"Name","value":"verified"}},{"kind":"Field","name":{"kind":"Name","value":"datacenter"}},{"kind":"Field","name":{"kind":"Name","value":"rentable"}},{"kind":"Field","name":{"kind":"Name","value":"cudaMaxGood"}}]}}]}},{"kind":"Field","name":{"kind":"Name","value":"pageInfo"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"hasNextPage"}},{"kind":"Field","name":{"kind":"Name","value":"endCursor"}}]}}]}}]}}]} as unknown as DocumentNode<SearchOffersQuery, SearchOffersQueryVariables>;
export const GpuModelsDocument = {"kind":"Document","definitions":[{"kind":"OperationDefinition","operation":"query","name":{"kind":"Name","value":"GpuModels"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"marketStats"},"selectionSet":{"kind":"SelectionSet","selections":[{"kind":"Field","name":{"kind":"Name","value":"gpuName"}}]}}]}}]} as unknown as DocumentNode<GpuModelsQuery, GpuModelsQueryVariables>;