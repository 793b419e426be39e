//! `#[fata::main]`: turns an application's `async fn main` into the image's entry point.
//!
//! ```ignore
//! #[fata::main]
//! async fn main(rt: fata::Runtime<Config>) -> Result<(), Error> { ... }
//! ```
//!
//! expands to the function (renamed) plus `__fata_start`, the symbol every platform calls
//! after boot, which hands the function to `fata::__private::start`. The argument may be
//! left out (no application configuration); the return type is `()` or `Result<(), E>` with
//! `E: Display`.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, ItemFn, parse_macro_input, spanned::Spanned};

/// Marks the application's entry point. See the crate documentation.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    if !args.is_empty() {
        let span = proc_macro2::TokenStream::from(args).span();
        return syn::Error::new(span, "#[fata::main] takes no arguments")
            .to_compile_error()
            .into();
    }
    let mut f = parse_macro_input!(item as ItemFn);
    if f.sig.asyncness.is_none() {
        return syn::Error::new(f.sig.fn_token.span(), "#[fata::main] needs an `async fn`")
            .to_compile_error()
            .into();
    }
    if !f.sig.generics.params.is_empty() {
        return syn::Error::new(f.sig.generics.span(), "#[fata::main] cannot be generic")
            .to_compile_error()
            .into();
    }
    let inner = format_ident!("__fata_app_{}", f.sig.ident);
    f.sig.ident = inner.clone();
    let call = match f.sig.inputs.len() {
        0 => quote! { |_rt: ::fata::Runtime<()>| #inner() },
        1 => {
            if let Some(FnArg::Receiver(r)) = f.sig.inputs.first() {
                return syn::Error::new(r.span(), "#[fata::main] cannot take `self`")
                    .to_compile_error()
                    .into();
            }
            quote! { #inner }
        }
        _ => {
            return syn::Error::new(
                f.sig.inputs.span(),
                "#[fata::main] takes one argument, `rt: fata::Runtime<Config>`, or none",
            )
            .to_compile_error()
            .into();
        }
    };
    quote! {
        #f

        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub fn __fata_start(boot: ::fata::__private::BootInfo) -> ! {
            ::fata::__private::start(boot, #call)
        }
    }
    .into()
}
