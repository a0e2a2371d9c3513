//! The codec of every generated gRPC server: prost's, except that a request body that is not
//! valid protobuf is the caller's error, INVALID_ARGUMENT, where tonic's `ProstCodec` answers
//! INTERNAL. `build.rs` names it as the servers' codec; the clients keep `ProstCodec`, since a
//! response that does not decode is no fault of the caller's request.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Encodes responses of `T` as prost does and decodes requests of `U`, refusing a body that is
/// not a `U` with INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U> {
    prost: ProstCodec<T, U>,
}

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self {
            prost: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.prost.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            message: PhantomData,
        }
    }
}

/// Decodes one request message; a body that is not one is INVALID_ARGUMENT.
#[derive(Debug)]
pub struct RequestDecoder<U> {
    message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, body: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(body).map(Some).map_err(|error| {
            Status::invalid_argument(format!("the request is not valid protobuf: {error}"))
        })
    }
}
