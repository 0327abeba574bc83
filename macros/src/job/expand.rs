//! `#[job]`: the generated job type, input struct and `Job` impl.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ItemFn;
use syn::spanned::Spanned;

use super::model::{CallArg, JobModel};

/// The original function followed by the generated items.
pub(crate) fn expand(func: &ItemFn, m: &JobModel) -> TokenStream {
    let JobModel {
        vis,
        docs,
        fn_ident,
        job_ident,
        input_ident,
        name,
        has_ctx,
        args,
        resources,
        call,
        output,
        ret_span,
        spec,
        krate,
    } = m;
    let fn_name = fn_ident.to_string();
    let job_doc = format!(
        "The job `#[job]` generated from the async fn `{fn_name}`; its input is `{input_ident}`."
    );
    let input_doc =
        format!("The input of the `{job_ident}` job: one field per argument of `{fn_name}`.");
    let alias_doc = format!("Lets `#[workflow]` find `{job_ident}` from the function `{fn_name}`.");
    let summary = docs.first();

    let idents: Vec<_> = args.iter().map(|a| &a.ident).collect();
    let tys: Vec<_> = args.iter().map(|a| &a.ty).collect();
    let field_names: Vec<String> = idents
        .iter()
        .map(|i| {
            let s = i.to_string();
            s.strip_prefix("r#").unwrap_or(&s).to_owned()
        })
        .collect();
    let consts: Vec<_> = idents
        .iter()
        .zip(&field_names)
        .map(|(i, n)| format_ident!("{}", n.to_uppercase(), span = i.span()))
        .collect();
    let field_docs: Vec<String> = field_names
        .iter()
        .map(|n| format!("Argument `{n}` of `{fn_name}`."))
        .collect();
    let const_docs: Vec<String> = field_names
        .iter()
        .map(|n| format!("The typed name of the `{n}` field, for the workflow builder."))
        .collect();
    let positions: Vec<_> = (0..args.len()).map(Literal::usize_unsuffixed).collect();

    let serde_crate = krate.serde();
    let input_struct = if args.is_empty() {
        quote! {
            #[doc = #input_doc]
            #[derive(#krate::__private::serde::Serialize, #krate::__private::serde::Deserialize)]
            #[serde(crate = #serde_crate)]
            #vis struct #input_ident;
        }
    } else {
        quote! {
            #[doc = #input_doc]
            #[derive(#krate::__private::serde::Serialize, #krate::__private::serde::Deserialize)]
            #[serde(crate = #serde_crate)]
            #vis struct #input_ident {
                #( #[doc = #field_docs] #vis #idents: #tys, )*
            }
        }
    };
    let input_name = input_ident.to_string();

    let spec_fn = if spec.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            fn spec(&self) -> #krate::JobSpec {
                #krate::JobSpec::new() #(#spec)*
            }
        }
    };
    let ctx_arg = has_ctx.then(|| quote!(__ctx,));
    let k = krate.at(*ret_span);
    let convert = quote_spanned!(*ret_span=> #k::__private::into_job_result);
    let args_fn = syn::Ident::new("__args", fn_ident.span());
    let k = krate.at(fn_ident.span());
    let res_idents: Vec<_> = (0..resources.len())
        .map(|i| format_ident!("__resource_{}", i))
        .collect();
    // Each resource type is checked (`Send + Sync + 'static`) where the user wrote it.
    let res_take: Vec<_> = resources
        .iter()
        .zip(&res_idents)
        .map(|(r, i)| {
            let ty = &r.ty;
            let kt = krate.at(ty.span());
            quote_spanned!(ty.span()=> let #i = #kt::__private::resource::<#ty>(__ctx).await?;)
        })
        .collect();
    let call_args: Vec<TokenStream> = call
        .iter()
        .map(|c| match c {
            CallArg::Input(n) => {
                let i = idents[*n];
                quote!(__input.#i)
            }
            CallArg::Resource(n) => {
                let i = &res_idents[*n];
                quote!(#i)
            }
        })
        .collect();
    let uses = if resources.is_empty() {
        TokenStream::new()
    } else {
        let keys = resources.iter().map(|r| {
            let ty = &r.ty;
            let kt = krate.at(ty.span());
            quote_spanned!(ty.span()=> #kt::resource::ResourceKey::of::<#ty>())
        });
        quote! {
            const USES: &'static [#krate::resource::ResourceKey] = &[#(#keys),*];
        }
    };
    let run = quote_spanned! {fn_ident.span()=>
        #[allow(unused_variables)]
        async fn run(
            &self,
            __ctx: &#k::JobContext,
            __input: Self::Input,
        ) -> ::core::result::Result<Self::Output, #k::JobError> {
            #(#res_take)*
            #convert(#fn_ident(#ctx_arg #(#call_args),*).await)
        }
    };

    quote! {
        #func

        #summary
        #[doc = ""]
        #[doc = #job_doc]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #job_ident;

        #input_struct

        impl ::core::fmt::Debug for #input_ident {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#input_name)
                    #( .field(#field_names, &#krate::__private::AsJson(&self.#idents)) )*
                    .finish()
            }
        }

        #[allow(dead_code)]
        impl #input_ident {
            #( #[doc = #const_docs] #vis const #consts: #krate::Field<Self, #tys> = #krate::Field::new(#field_names); )*
        }

        #[doc = #alias_doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis type #fn_ident = #job_ident;

        #[allow(dead_code)]
        impl #job_ident {
            #[doc(hidden)]
            #vis const __JOB: Self = #job_ident;

            /// Checks the number of arguments of a job call in `#[workflow]`.
            #[doc(hidden)]
            #[allow(unused_variables, clippy::too_many_arguments)]
            #vis fn #args_fn(#( #idents: #krate::__private::ArgSlot ),*) {}
        }

        #(
            impl #krate::__private::Arg<#positions> for #job_ident {
                type Type = #tys;
                const FIELD: #krate::Field<#input_ident, #tys> = #input_ident::#consts;
            }
        )*

        impl #krate::Job for #job_ident {
            type Input = #input_ident;
            type Output = #output;
            const NAME: &'static str = #name;
            #uses
            #spec_fn
            #run
        }
    }
}
